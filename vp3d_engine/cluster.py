"""Batch conversion on a Dask cluster: ``vp3d-convert INPUTS --out DIR --scheduler tls://HOST:8786``.

vp3d grows no job system of its own: each input becomes one Dask task that runs the single
pipeline function (:func:`vp3d_engine.convert.convert`) on a worker started with Dask's own
commands (``dask scheduler``, ``dask worker tls://HOST:8786``) on machines where vp3d is installed.

- Models: a worker process loads the lifter and the detector once and keeps them for its next
  clips (:func:`_worker_models`, one :class:`~vp3d_engine.convert.Models` per lifter, checkpoint
  and device; the detectors live in its pool, one per worker thread at work).
- No shared disk (the default): the client reads each input's bytes and sends them with its task;
  the worker converts them in a temporary folder and sends the output files' bytes back; the client
  writes them into place as one set (write, then rename), with the names and the checks of a local
  run (planned by ``vp3d-convert`` before anything is sent). ``--shared-fs``: the workers read the
  inputs and write the outputs at the client's absolute paths themselves.
- Data back, never code: a task returns a plain dict of str and bytes (:func:`run_remote`), at most
  :func:`max_result_bytes` of it. The client reaches the scheduler and reads what comes back with
  :mod:`vp3d_engine.cluster_client`, which unpickles nothing from the cluster, checks each result
  before anything is written, and holds the TLS and "is this a Dask scheduler" checks. A result
  that fails the checks, or a task that fails with a raised error, is one failed clip.
- A worker lost mid-batch (killed, machine gone): the scheduler runs its clips again on another
  worker (Dask's own bookkeeping). The client receives one result per clip and writes it once; a
  clip that has killed three workers is reported as failed.
- A failing clip never stops the others; the exit status is that of a local run (0 all converted,
  2 any failed, 1 a bug in vp3d).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from converters.errors import ConfigurationError, ConversionError, Vp3dError
from converters.fileio import OutputSet, check_input_path, check_output_folder, printable, remove_stale_temps
from converters.interrupts import check_interrupted
from vp3d_engine.cluster_client import RemoteResult, RemoteTaskError, connect, fetch_result, refuse_unpickling

if TYPE_CHECKING:
    from vp3d_engine.convert import ConvertOptions, Models
    from vp3d_engine.jobs import Job

__all__ = ["RemoteJob", "max_result_bytes", "run_batch", "run_remote", "worker_stats", "worker_version"]

#: A worker's result may hold RESULT_BASE_BYTES plus RESULT_BYTES_PER_INPUT_BYTE per byte of input.
RESULT_BASE_BYTES = 64 << 20
RESULT_BYTES_PER_INPUT_BYTE = 64


@dataclass(frozen=True)
class RemoteJob:
    """One input as a task. ``label`` is the input as the user named it (for messages); ``files``
    its bytes by relative path (``src/...`` the input, ``kp/...`` a separate 2D file), or None
    with ``shared`` = (source, keypoints, stem) absolute paths the worker uses directly."""

    name: str
    label: str
    kind: str
    formats: list[str]
    targets: list[str]
    source: str | None = None  # relative path in ``files`` (None: no video with --keypoints)
    keypoints: str | None = None
    files: dict[str, bytes] | None = None
    shared: tuple[str, str | None, str] | None = None


# --- on a worker: the task, and the models its process keeps --------------------------------------


_MODELS: dict[tuple[str, str, str], Models] = {}
_MODELS_LOCK = threading.Lock()
_STATS = {"clips": 0, "lifters_loaded": 0}


def _worker_models(options: ConvertOptions) -> Models:
    """This worker process's models for these options: loaded by its first clip, then kept."""
    from vp3d_engine.convert import Models, load_models

    p = options.pipeline
    key = (p.lifter, str(p.checkpoint), p.device)
    with _MODELS_LOCK:
        models = _MODELS.get(key)
        if models is None:
            models = _MODELS[key] = Models()
        if not models.loaded:
            loaded = load_models(options)
            models.lifter, models.loaded = loaded.lifter, True
            _STATS["lifters_loaded"] += 1
    return models


def worker_stats() -> dict[str, int]:
    """What this worker process has done: clips run, lifters loaded, detectors made."""
    with _MODELS_LOCK:
        return {**_STATS, "detectors_created": sum(m.detectors.created for m in _MODELS.values())}


def worker_version() -> str:
    """vp3d's installed version (the client checks that every worker can run vp3d at all)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vp3d")
    except PackageNotFoundError:
        return "unknown (not installed as a package)"


def _unpack(files: dict[str, bytes], root: Path) -> None:
    for rel, data in files.items():
        path = (root / rel).resolve()
        if root.resolve() not in path.parents:  # a name like ../x never leaves the folder
            raise ConfigurationError(f"refusing to unpack {rel!r} outside the job folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_remote(job: RemoteJob, options: ConvertOptions) -> dict[str, Any]:
    """The task: convert one input on this worker (never raises for a clip's own failure). Returns
    a :class:`RemoteResult` as a plain dict of str and bytes: data the client reads as msgpack."""
    from vp3d_engine.convert import convert
    from vp3d_engine.jobs import conversion_line

    with _MODELS_LOCK:
        _STATS["clips"] += 1
    result = RemoteResult(worker=_worker_name())
    if multiprocessing.current_process().daemon:  # a nanny's worker may not start detection processes
        options = replace(options, pipeline=replace(options.pipeline, workers=1))
    options = replace(options, formats=list(job.formats))
    replaced: list[tuple[str, str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="vp3d-cluster-") as tmp:
            root = Path(tmp)
            if job.shared is not None:
                source, keypoints, stem = Path(job.shared[0]), job.shared[1], Path(job.shared[2])
                kp = Path(keypoints) if keypoints else None
                if job.kind != "keypoints" or os.path.lexists(source):
                    check_input_path(source)
                check_output_folder(stem.parent)
                remove_stale_temps(stem.parent)
            else:
                _unpack(job.files or {}, root)
                source = root / (job.source or "src/none")
                kp = root / job.keypoints if job.keypoints else None
                stem = root / "out" / job.name
                stem.parent.mkdir()
                replaced = [(str(source), job.label)] + ([(str(kp), Path(job.keypoints or "").name)] if kp else [])
            conv = convert(source, options, stem, kind=job.kind,  # type: ignore[arg-type]
                           keypoints=kp, models=_worker_models(options))
            if job.shared is None:
                for path in conv.files:
                    result.outputs[path.name[len(job.name):]] = path.read_bytes()
            made = {path.name for path in conv.files}
            result.line = conversion_line(job.label, conv, [t for t in job.targets if Path(t).name in made])
    except Vp3dError as exc:
        result.error, result.message = "input", _relabel(str(exc), replaced)
    except OSError as exc:
        where = f" ({_relabel(str(exc.filename), replaced)})" if exc.filename else ""
        result.error, result.message = "os", f"{exc.strerror or exc}{where} on worker {result.worker}"
    except Exception as exc:  # a bug in vp3d: reported with its traceback, the batch goes on
        result.error, result.message = "bug", f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
    return asdict(result)


def _relabel(text: str, replaced: list[tuple[str, str]]) -> str:
    """A worker's message with its temporary paths turned back into the names the user gave."""
    for tmp, label in replaced:
        text = text.replace(tmp, label)
    return text


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


# --- the batch, from the client: what is sent, what may come back, what is written ---------------


def max_result_bytes(input_bytes: int) -> int:
    """The most a worker may send back for an input of ``input_bytes`` bytes (its files and its
    messages together): 64 MiB plus 64 times the input. A local run writes far less: about 12 kB
    per frame for all seven formats together, preview MP4 included, some 6 times a 480p H.264 clip's
    own size. A bigger result is refused before it is fetched, by the size its worker reports
    (:func:`~vp3d_engine.cluster_client.fetch_result`)."""
    return RESULT_BASE_BYTES + RESULT_BYTES_PER_INPUT_BYTE * max(0, input_bytes)


def _check_workers(client: Any) -> None:
    """Every connected worker can import vp3d (a worker without it fails each clip cryptically)."""
    here = worker_version()
    if not client.scheduler_info().get("workers"):
        print("vp3d-convert: no workers yet; the clips wait for one (start `dask worker ADDRESS` on a machine "
              "with vp3d installed)", file=sys.stderr)
        return
    try:
        versions = client.run(worker_version)
    except Exception as exc:
        raise ConfigurationError(f"a Dask worker cannot run vp3d ({type(exc).__name__}: {printable(exc)[:300]}); "
                                 "install vp3d (and its mediapipe) on every worker machine") from None
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        raise ConfigurationError("a Dask worker answered the version check with something else than a version; "
                                 "check which machines can join the scheduler")
    others = {printable(w): printable(v)[:80] for w, v in versions.items() if v != here}
    if others:
        print(f"vp3d-convert: warning: workers run another vp3d version ({others}) than this one ({here})",
              file=sys.stderr)


def _remote_job(job: Job, shared: bool) -> RemoteJob:
    """The task for one planned input (its bytes read here unless ``shared``)."""
    base = RemoteJob(name=job.name, label=str(job.source), kind=job.kind, formats=list(job.formats),
                     targets=[str(t) for t in job.targets])
    if shared:
        kp = str(Path(job.keypoints).resolve()) if job.keypoints else None
        return replace(base, shared=(str(job.source.resolve()), kp, str(job.stem.resolve())))
    files: dict[str, bytes] = {}

    def add(path: Path, prefix: str) -> str:
        check_input_path(path)
        if path.is_dir():  # an OpenPose folder: its files
            for child in sorted(path.iterdir()):
                if child.is_file():
                    files[f"{prefix}/{path.name}/{child.name}"] = child.read_bytes()
        else:
            files[f"{prefix}/{path.name}"] = path.read_bytes()
        return f"{prefix}/{path.name}"

    source = add(job.source, "src") if job.kind != "keypoints" or os.path.lexists(job.source) else None
    keypoints = None
    if job.keypoints is not None:
        same = source is not None and job.keypoints.resolve() == job.source.resolve()
        keypoints = source if same else add(job.keypoints, "kp")
    return replace(base, source=source or keypoints, keypoints=keypoints, files=files)


def _input_bytes(task: RemoteJob, job: Job) -> int:
    """The size of what the task converts: the bytes sent, or the shared files'."""
    if task.files is not None:
        return sum(len(b) for b in task.files.values())
    total = 0
    for path in (job.source, job.keypoints):
        if path is not None and path.is_dir():
            total += sum(c.stat().st_size for c in path.iterdir() if c.is_file())
        elif path is not None and path.is_file():
            total += path.stat().st_size
    return total


def _write_outputs(job: Job, outputs: dict[str, bytes]) -> None:
    """A worker's files into place as one set: all new, or all as they were."""
    check_output_folder(job.out_dir)
    with OutputSet() as out:
        for suffix, data in outputs.items():
            target = job.out_dir / f"{job.name}{suffix}"
            if target not in job.targets:
                raise ConfigurationError(f"a worker returned {target.name}, which this run did not ask for")
            with open(out.stage(target), "wb") as f:
                f.write(data)
        out.commit()


def _check_checkpoint(options: ConvertOptions, shared: bool) -> None:
    name = str(options.pipeline.checkpoint)
    if not shared and options.pipeline.lifter == "videopose3d" and (os.sep in name or "/" in name
                                                                     or name.endswith(".bin")):
        raise ConfigurationError(f"--checkpoint {name} is a path on this machine; the workers load checkpoints "
                                 "by name from their own install: copy it into their checkpoints folder and give "
                                 "its name, or use --shared-fs with a path every worker can read")


@contextlib.contextmanager
def _quiet_dask_protocol() -> Iterator[None]:
    """Dask logs a refused (non-msgpack) result as a critical failure with its traceback; here it
    is one failed clip with its own line."""
    logger = logging.getLogger("distributed.protocol.core")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_batch(jobs: list[Job], args: argparse.Namespace, options: ConvertOptions) -> int:
    """Convert ``jobs`` on the cluster at ``args.scheduler``; prints as a local run does and
    returns its exit status."""
    from tqdm import tqdm

    from vp3d_engine.jobs import report_failure

    _check_checkpoint(options, args.shared_fs)
    with refuse_unpickling(), _quiet_dask_protocol():
        client = connect(args.scheduler)
        try:
            failures, bugs = _run_jobs(client, jobs, args, options, tqdm, report_failure)
        finally:
            client.close()
    if len(jobs) > 1:
        print(f"{len(jobs) - failures - bugs} converted, {failures + bugs} failed")
    return 1 if bugs else 2 if failures else 0


def _run_jobs(client: Any, jobs: list[Job], args: argparse.Namespace, options: ConvertOptions, tqdm: Any,
              report_failure: Any) -> tuple[int, int]:
    """Submit every job, then write each result as it comes: (failures, bugs)."""
    _check_workers(client)
    failures = bugs = 0
    pending: dict[Any, tuple[Job, int]] = {}
    bar = tqdm(total=len(jobs), desc="clips", unit="clip", disable=args.quiet, file=sys.stderr)

    def fail(job: Job, exc: BaseException) -> None:
        nonlocal failures
        failures += 1
        bar.clear()
        report_failure(job.source, exc)
        bar.update(1)

    for job in jobs:
        check_interrupted()
        if job.error is not None:
            fail(job, job.error)
            continue
        try:
            task = _remote_job(job, args.shared_fs)
            limit = max_result_bytes(_input_bytes(task, job))
        except (Vp3dError, OSError) as exc:
            fail(job, exc)
            continue
        key = f"vp3d-convert-{job.name}-{uuid.uuid4().hex[:12]}"
        future = client.submit(run_remote, task, options, key=key, pure=False)
        pending[future] = (job, limit)
    keys = {f.key for f in pending}
    shown = 0.0
    while pending:
        check_interrupted()
        done = [f for f in pending if f.done()]
        if not done:
            time.sleep(0.2)
        for future in done:
            job, limit = pending.pop(future)
            if future.status == "error":
                error = future.exception()  # the client's own RemoteTaskError: nothing was unpickled
                name = error.name if isinstance(error, RemoteTaskError) else None
                if name and name.endswith(".KilledWorker"):
                    fail(job, Vp3dError(f"the workers converting it died {_allowed_failures()} times "
                                        "(out of memory, or killed); nothing of it was written"))
                else:
                    fail(job, ConversionError(
                        f"its task failed on the cluster with {name or 'an error'} raised on a worker, which vp3d "
                        "does not read (a vp3d worker returns a clip's failure as data, it does not raise): check "
                        f"that every worker runs this vp3d ({worker_version()}) and which machines can join the "
                        "scheduler; nothing of it was written"))
                future.release()
                continue
            if future.status == "cancelled":
                fail(job, Vp3dError("its task was cancelled on the cluster; nothing of it was written"))
                continue
            try:
                res = fetch_result(client, future, job, limit, args.shared_fs)
            except ConversionError as exc:
                fail(job, exc)
                continue
            finally:
                future.release()
            if res.error == "bug":
                bugs += 1
                bar.clear()
                print(res.traceback.rstrip(), file=sys.stderr)
                print(f"vp3d-convert: internal error while converting {job.source} on {res.worker} (a bug in "
                      "vp3d; please report the traceback above)", file=sys.stderr)
                bar.update(1)
                continue
            if res.error is not None:
                fail(job, Vp3dError(res.message) if res.error == "input" else OSError(res.message))
                continue
            if not args.shared_fs:
                try:
                    _write_outputs(job, res.outputs)
                except (Vp3dError, OSError) as exc:
                    fail(job, exc)
                    continue
            bar.clear()
            print(res.line, flush=True)
            bar.update(1)
        if done or time.monotonic() - shown > 1.0:
            bar.set_postfix(running=_running(client, keys), failed=failures + bugs, refresh=True)
            shown = time.monotonic()
    bar.close()
    return failures, bugs


def _running(client: Any, keys: set[str]) -> int:
    try:  # the scheduler counts tasks queued on a worker as processing: at most a thread each run
        return sum(min(sum(1 for k in ks if k in keys), client.nthreads().get(w, 1))
                   for w, ks in client.processing().items())
    except Exception:  # a progress figure only: never fail the batch for it
        return 0


def _allowed_failures() -> int:
    import dask

    return int(dask.config.get("distributed.scheduler.allowed-failures", 3)) + 1
