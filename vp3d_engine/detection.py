"""The detect stage: a video's frames decoded on a background thread (PyAV releases the GIL, so
decoding hides behind detection) and run through a registered 2D detector, in this process or, for
a long clip and a detector that splits in time, in worker processes (:mod:`vp3d_engine.parallel_detect`).
What the detector can do (ranks people, places hidden joints) is read from its registry spec."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.errors import InputFileError
from vp3d_engine.detectors.registry import detector_spec
from vp3d_engine.detectors.types import FrameDetections
from vp3d_engine.video import DecodeReport, Frame, VideoInfo, in_background, iter_frames

if TYPE_CHECKING:
    from vp3d_engine.detectors.registry import DetectorPool
    from vp3d_engine.options import PipelineOptions

__all__ = ["detect_video", "detection_span"]

log = logging.getLogger(__name__)

_QUEUE_BYTES = 256 << 20  # decoded frames waiting for the detector, at most


def _frames_in_background(path: Path, opts: PipelineOptions, report: DecodeReport,
                          frame_bytes: int = 0) -> Generator[Frame, None, None]:
    """The frames to detect, decoded on a thread, as many ahead as :data:`_QUEUE_BYTES` holds."""
    return in_background(iter_frames(path, opts.start, opts.end, opts.stride, report),
                         depth=min(16, _QUEUE_BYTES // max(frame_bytes, 1)))


#: Parallel detection: each worker gets at least this much video, and starts this much earlier.
MIN_PART_S = 5.0
WARM_UP_S = 1.0


def detection_span(opts: PipelineOptions, info: VideoInfo) -> tuple[float, float | None]:
    """Seconds of video to detect: ``--start`` to ``--end`` or the end (None where unknown)."""
    start = opts.start or 0.0
    if not info.duration_s:
        return start, opts.end
    return start, min(opts.end, info.duration_s) if opts.end is not None else info.duration_s


def _parallel_parts(path: Path, opts: PipelineOptions, info: VideoInfo) -> list[Any]:
    """The parts to detect in worker processes, or [] to detect in this one: only a detector that
    splits in time (MediaPipe: CPU, one core each), every frame (no --stride), and a long enough clip
    of known length."""
    from vp3d_engine.parallel_detect import default_workers, split_parts

    workers = opts.workers if opts.workers is not None else default_workers()
    if workers < 2 or not detector_spec(opts.detector).splits_in_time or opts.stride != 1 or not info.duration_s:
        return []
    start, end = detection_span(opts, info)
    if end is None:
        return []
    workers = min(workers, int((end - start) // MIN_PART_S))
    return split_parts(start, end, workers, WARM_UP_S, last_end=opts.end) if workers >= 2 else []


def detect_video(path: Path, opts: PipelineOptions, info: VideoInfo, report: DecodeReport,
                 progress: Callable[[float], None] | None = None,
                 detectors: DetectorPool | None = None) -> tuple[FrameDetections, dict[str, Any]]:
    """Every frame's people (``FrameDetections``) and the detector's extras (e.g. MediaPipe's world
    landmarks). ``progress(t)``: seconds of video detected so far. ``detectors``: a pool that keeps
    the detector loaded for the next video (else one is made and closed here)."""
    from vp3d_engine.detectors.registry import DetectorPool

    spec = detector_spec(opts.detector)
    asked = opts.person if isinstance(opts.person, int) else 0
    options: dict[str, Any] = {"max_people": asked + 1} if spec.max_people and asked else {}
    if opts.person == "all" and spec.follows_people:  # as many as --person all converts
        from vp3d_engine.tracking import MAX_PEOPLE

        options = {"max_people": MAX_PEOPLE}
    parts = _parallel_parts(path, opts, info)
    if parts:
        from vp3d_engine.parallel_detect import detect_parts

        found, stamps, found_extras = detect_parts(path, parts, opts.detector, options, report, progress)
        if not found:
            raise InputFileError(f"{path}: no video frames could be decoded")
        if opts.camera != "static":  # the workers took every core: the camera in a pass of its own
            from converters.errors import Vp3dError
            from vp3d_engine.camera_motion import estimate_camera_motion

            try:
                found_extras["camera_motion"] = estimate_camera_motion(
                    path, people=found, times=np.asarray(stamps), focal_px=opts.focal, start=opts.start,
                    end=opts.end, stride=2)
            except Vp3dError as exc:  # frames the second pass reads differently (a damaged video)
                log.warning("%s: the camera could not be estimated (%s); it is taken as static", path, exc)
        return FrameDetections(people=found, image_size=(info.width, info.height), fps=info.fps,
                               timestamps=np.asarray(stamps), source=str(path), ranked=spec.ranks_people,
                               places_hidden=spec.places_hidden_joints,
                               identities=_identities(spec.follows_people, found_extras, found)), found_extras
    pool = detectors if detectors is not None else DetectorPool()
    detector = pool.acquire(opts.detector, device="cpu" if opts.device == "auto" else opts.device, **options)
    people: list[np.ndarray] = []
    times: list[float] = []
    batch: list[Frame] = []
    broken = True
    camera = None
    if opts.camera != "static":  # fed the frames decoded for detection, with the people to leave out
        from vp3d_engine.camera_motion import CameraTracker

        camera = CameraTracker()
    try:
        def flush() -> None:
            found = detector.detect([f.image for f in batch])
            if camera is not None:
                for f, who in zip(batch, found, strict=True):
                    camera.add(f.image, f.time, who)
            people.extend(found)
            times.extend(f.time for f in batch)
            if progress is not None:
                progress(batch[-1].time)
            batch.clear()

        with contextlib.closing(_frames_in_background(path, opts, report, 3 * info.width * info.height)) as frames:
            for frame in frames:
                batch.append(frame)
                if len(batch) >= detector.batch_size:
                    flush()
        if batch:
            flush()
        extras = detector.extras()
        if camera is not None and people:
            extras["camera_motion"] = camera.finish(opts.focal)
        broken = False
    finally:
        pool.release(detector, broken=broken or detectors is None)
    dets = FrameDetections(people=people, image_size=(info.width, info.height), fps=info.fps / opts.stride,
                           timestamps=np.asarray(times), source=str(path), ranked=spec.ranks_people,
                           places_hidden=spec.places_hidden_joints,
                           identities=_identities(spec.follows_people, extras, people))
    return dets, extras


def _identities(follows: bool, extras: dict[str, Any], people: list[np.ndarray]) -> list[np.ndarray] | None:
    """The detector's identities for the people of every frame, where it follows people and says."""
    ids = extras.get("identities") if follows else None
    if ids is None or len(ids) != len(people):
        return None
    return [np.asarray(i, np.int64) for i in ids]
