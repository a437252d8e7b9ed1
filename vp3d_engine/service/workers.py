"""The worker processes of ``vp3d serve``: the pipeline runs here, never in a request.

Each worker is a process (spawned: no state shared with the server but what is sent) that loads
its models once and converts one job at a time through the single pipeline function,
:func:`vp3d_engine.convert.convert`, on its own main thread (so Blender's module, which only
works on a main thread, can export FBX there). The server side has two threads: the dispatcher
hands the oldest queued job to an idle worker and watches for workers that died; the collector
turns the workers' messages (progress, done, failed) into rows of the job store.

A job is cancelled by stopping its worker (SIGTERM: the conversion cleans up its temporary files)
and starting a fresh one. A worker that dies in a job (killed, out of memory) costs that job one
attempt: it is queued again once, then failed with the reason.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vp3d_engine.service.store import JobStore, safe_stem

__all__ = ["Task", "WorkerPool"]

log = logging.getLogger(__name__)
Runner = Callable[["Task", Callable[[str, float], None]], dict[str, Any]]


@dataclass
class Task:
    job_id: str
    upload: str
    out_dir: str
    stem: str
    options: dict[str, Any]


def _load_runner(spec: str) -> Runner:
    module, _, name = spec.partition(":")
    factory = getattr(importlib.import_module(module), name)
    runner: Runner = factory()
    return runner


def _worker_main(spec: str, tasks: Any, events: Any) -> None:
    """A worker process: make the runner (models load here, once), then run tasks until None."""
    import signal

    from converters.errors import Vp3dError
    from converters.interrupts import Interrupted, interrupts_raise

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the server's terminal is the server's to handle
    runner = _load_runner(spec)
    events.put(("ready", None, None))
    with interrupts_raise():
        while True:
            task = tasks.get()
            if task is None:
                return
            try:
                result = runner(task, _Progress(task.job_id, events))
                events.put(("done", task.job_id, result))
            except Interrupted:
                return
            except Vp3dError as exc:
                events.put(("failed", task.job_id, str(exc)))
            except Exception as exc:  # a bug: say so, keep the worker
                log.error("job %s: %s", task.job_id, traceback.format_exc())
                events.put(("failed", task.job_id, f"internal error ({type(exc).__name__}: {exc}); please report it"))


class _Progress:
    """Progress of one job to the server: a message per stage change or 1% step, not per frame."""

    def __init__(self, job_id: str, events: Any) -> None:
        self.job_id, self.events = job_id, events
        self.stage, self.fraction = "", -1.0

    def __call__(self, stage: str, fraction: float) -> None:
        if stage != self.stage or fraction - self.fraction >= 0.01 or fraction >= 1.0:
            self.stage, self.fraction = stage, float(fraction)
            self.events.put(("progress", self.job_id, (stage, float(fraction))))


class _Worker:
    def __init__(self, context: Any, spec: str, events: Any) -> None:
        self.tasks = context.Queue()
        self.process = context.Process(target=_worker_main, args=(spec, self.tasks, events), daemon=True)
        self.process.start()
        self.job: str | None = None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.tasks.close()
        self.tasks.join_thread()


class WorkerPool:
    """``size`` workers fed from ``store``'s queue; ``on_change(job_id)`` is called after every update."""

    def __init__(self, store: JobStore, size: int, runner: str = "vp3d_engine.service.runner:make_runner",
                 on_change: Callable[[str], None] | None = None, max_attempts: int = 2) -> None:
        self.store, self.size, self.spec = store, size, runner
        self.on_change = on_change or (lambda job_id: None)
        self.max_attempts = max_attempts
        self._context = mp.get_context("spawn")
        self._events = self._context.Queue()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._workers = [_Worker(self._context, self.spec, self._events) for _ in range(self.size)]
        for target in (self._dispatch, self._collect):
            thread = threading.Thread(target=target, daemon=True, name=f"vp3d-{target.__name__.strip('_')}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            for worker in self._workers:
                worker.stop()
            self._workers = []
        self._events.close()
        self._events.join_thread()

    def running(self) -> int:
        with self._lock:
            return sum(w.job is not None for w in self._workers)

    def cancel(self, job_id: str) -> bool:
        """Stop the worker running ``job_id`` (if any) and start a fresh one; True if it was running."""
        with self._lock:
            for k, worker in enumerate(self._workers):
                if worker.job == job_id:
                    worker.job = None
                    worker.stop()
                    self._workers[k] = _Worker(self._context, self.spec, self._events)
                    return True
        return False

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for k, worker in enumerate(self._workers):
                    if worker.job is not None and not worker.process.is_alive():
                        self._lost(worker.job, worker.process.exitcode)
                        worker.job = None
                        self._workers[k] = worker = _Worker(self._context, self.spec, self._events)
                    if worker.job is None:
                        job = self.store.claim_next()
                        if job is None:
                            break
                        folder = self.store.folder(job.id)
                        worker.job = job.id
                        worker.tasks.put(Task(job.id, str(folder / job.upload), str(folder / "out"),
                                              safe_stem(job.name), job.options))
                        self.on_change(job.id)
            self._stop.wait(0.1)

    def _lost(self, job_id: str, code: int | None) -> None:
        job = self.store.get(job_id)
        if job is None or job.state != "running":
            return
        if job.attempts < self.max_attempts:
            self.store.update(job_id, state="queued", stage="", progress=0.0)
        else:
            self.store.update(job_id, state="failed", finished=time.time(),
                              error=f"the worker stopped while converting (exit status {code}), {job.attempts} times")
        self.on_change(job_id)

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                kind, job_id, payload = self._events.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            if job_id is None:
                continue
            job = self.store.get(job_id)
            if job is None or job.state != "running":
                continue  # cancelled or deleted meanwhile
            if kind == "progress":
                stage, fraction = payload
                self.store.update(job_id, stage=stage, progress=fraction)
            else:
                with self._lock:
                    for worker in self._workers:
                        if worker.job == job_id:
                            worker.job = None
                if kind == "done":
                    self.store.update(job_id, state="done", stage="done", progress=1.0, finished=time.time(),
                                      files=payload["files"], timings=payload.get("timings", {}))
                else:
                    self.store.update(job_id, state="failed", finished=time.time(), error=str(payload))
            self.on_change(job_id)
