"""2D detection split over worker processes: one part of the video each, stitched in order.

MediaPipe keeps about one core busy, so a long video is cut into as many consecutive parts as
there are workers. Each worker (a fresh ``spawn`` process: no threads inherited from the parent)
loads the detector once, seeks to ``warm_up_s`` before its part so that MediaPipe's tracking and
landmark smoothing have settled when the part begins, detects every frame, and sends back the
frames of its part only; progress goes to the parent over a queue, as seconds of video done.
Frames are assigned to parts by timestamp, so every frame is detected exactly once.

A worker that fails reports its exception; the others are stopped and the error is raised in the
parent. Interrupting the parent stops the workers.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import ConversionError, InputFileError, Vp3dError
from vp3d_engine.video import DecodeReport

__all__ = ["Part", "default_workers", "detect_parts", "split_parts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """Frames with ``start <= time < end`` (``end`` None: to the end), decoded from ``warm_start``."""

    start: float
    end: float | None
    warm_start: float


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def split_parts(start: float, end: float, workers: int, warm_up_s: float, last_end: float | None = None) -> list[Part]:
    """``workers`` consecutive parts of equal length covering ``[start, end)``; the last one ends at
    ``last_end`` (None: the end of the video, so no frame is lost to a rounded duration)."""
    bounds = np.linspace(start, end, workers + 1)
    return [Part(start=float(bounds[k]), end=last_end if k == workers - 1 else float(bounds[k + 1]),
                 warm_start=max(start, float(bounds[k]) - (warm_up_s if k else 0.0))) for k in range(workers)]


#: Identities of a detector that follows people are offset by this much per part (tracking then
#: joins a person's identities at the parts' seams, as it joins any track across one frame).
PART_IDENTITIES = 1_000_000


def _work(path: str, part: Part, detector: str, options: dict[str, Any], index: int, messages: Any,
          verbose: bool = False) -> None:
    """Worker process: detect one part, report progress and the result (or the error). It speaks
    through ``messages`` only: what native code (MediaPipe's TFLite and absl start-up notes) writes
    on its stderr would land in the middle of the parent's progress bar, so it goes to nowhere."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    if not verbose:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    try:
        from vp3d_engine.detectors.registry import create_detector
        from vp3d_engine.video import iter_frames

        det = create_detector(detector, device="cpu", **options)
        report = DecodeReport()
        people: list[np.ndarray] = []
        times: list[float] = []
        first_kept: int | None = None  # the first frame of the part, counted from the warm-up's first
        try:
            for seen, frame in enumerate(iter_frames(path, part.warm_start or None, part.end, 1, report)):
                found = det.detect([frame.image])[0]
                if frame.time >= part.start:  # parts meet exactly: start_k <= t < end_k
                    if first_kept is None:
                        first_kept = seen
                    people.append(found)
                    times.append(frame.time)
                    messages.put(("progress", index, frame.time))
        except InputFileError:
            # A later part of a file cut short (its header promises more than it holds) is empty,
            # as the single-process run would find: the parts before it stand.
            if index == 0 or people:
                raise
        finally:
            extras = det.extras()
            det.close()
        # Per-frame extras: the warm-up frames before the part's start go (all of them when the
        # part kept no frame, as a part past the end of a file cut short).
        extras = {k: (v[first_kept:] if first_kept is not None else []) if isinstance(v, list) else v
                  for k, v in extras.items()}
        messages.put(("done", index, (people, times, extras, report.damaged_packets, report.first_error,
                                      report.decoded, report.yielded)))
    except BaseException as exc:  # handed to the parent, which raises it
        kind = "vp3d" if isinstance(exc, Vp3dError) else "crash"
        messages.put(("error", index, (kind, type(exc).__name__, str(exc), traceback.format_exc())))


def detect_parts(path: Path, parts: list[Part], detector: str, options: dict[str, Any], report: DecodeReport,
                 progress: Callable[[float], None] | None = None,
                 ) -> tuple[list[np.ndarray], list[float], dict[str, Any]]:
    """Detect every part in its own process; the people and timestamps of all frames in order,
    and the detector's extras joined in the same order."""
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
    procs = [ctx.Process(target=_work, args=(str(path), part, detector, options, k, messages, verbose), daemon=True,
                         name=f"vp3d-detect-{k}") for k, part in enumerate(parts)]
    for proc in procs:
        proc.start()
    done: dict[int, tuple[Any, ...]] = {}
    reached = {k: part.start for k, part in enumerate(parts)}
    first = parts[0].start
    try:
        while len(done) < len(parts):
            try:
                kind, k, payload = messages.get(timeout=1.0)
            except queue.Empty:
                dead = [p.name for k2, p in enumerate(procs) if k2 not in done and not p.is_alive()]
                if dead:
                    raise ConversionError(f"detection worker {', '.join(dead)} stopped unexpectedly (out of memory?); "
                                          "try --workers 1") from None
                continue
            if kind == "progress":
                reached[k] = payload
                if progress is not None:
                    progress(first + sum(reached[j] - parts[j].start for j in reached))
            elif kind == "done":
                done[k] = payload
            else:
                error_kind, name, text, trace = payload
                if error_kind == "vp3d":
                    raise ConversionError(text)
                log.debug("worker %d failed:\n%s", k, trace)
                raise ConversionError(f"detection worker {k} failed ({name}: {text})")
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        messages.close()
    people: list[np.ndarray] = []
    times: list[float] = []
    extras: dict[str, Any] = {}
    for k in range(len(parts)):
        part_people, part_times, part_extras, damaged, first_error, decoded, _ = done[k]
        people.extend(part_people)
        times.extend(part_times)
        for key, value in part_extras.items():
            if key == "identities":  # each worker numbers its people from 0: distinct per part
                value = [np.asarray(ids, np.int64) + k * PART_IDENTITIES for ids in value]
            extras.setdefault(key, []).extend(value)
        report.damaged_packets += damaged
        report.first_error = report.first_error or first_error
        report.decoded += decoded
        report.yielded += len(part_times)
    return people, times, extras
