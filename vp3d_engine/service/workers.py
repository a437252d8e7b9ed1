"""The worker processes of ``vp3d serve``: the pipeline runs here, never in a request.

Each worker is a process (spawned: no state shared with the server but what is sent) that loads
its models once and converts one job at a time through the single pipeline function,
:func:`vp3d_engine.convert.convert`, on its own main thread (so Blender's module, which only
works on a main thread, can export FBX there). The server side has two threads: the dispatcher
hands the oldest queued job to an idle worker and replaces workers that died; the collector
turns the workers' messages (progress, done, failed) into rows of the job store.

Each hand-over of a job is a *run* with its own token and its own folder (``run-<token>/``): the
worker writes there, and only the collector of the server that handed out that run renames it to
``out/`` when it succeeds. A worker never outlives its server for long: a thread in it watches a
pipe whose other end only the server holds (end of file when the server dies, however it dies)
and the worker's parent pid, and stops the worker (SIGTERM, so the conversion removes its
temporary files; a hard exit if that takes too long). ``prctl(PR_SET_PDEATHSIG)`` is not used:
it fires when the *thread* that started the worker ends, and workers are restarted from the
dispatcher thread and from request threads, which end long before the server does.

A job is cancelled by stopping its worker (SIGTERM) and starting a fresh one. A worker that dies
in a job (killed, out of memory) costs that job one attempt: it is queued again once, then failed
with the reason. A worker stopped by SIGTERM or SIGINT (the server stopping, an administrator)
costs nothing: the job is queued again with its attempts as they were.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import queue
import secrets
import shutil
import signal
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
#: Exit statuses of a worker stopped on purpose (the server stopping, an administrator): no attempt lost.
STOPPED = {128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT}
#: How long an orphaned worker gets to clean up after its SIGTERM before it exits hard.
ORPHAN_GRACE_S = 10.0
#: An idle worker that died is replaced once it is this old (one that dies as it starts is not respawned in a loop).
RESTART_AFTER_S = 5.0


@dataclass
class Task:
    job_id: str
    upload: str
    out_dir: str  # this run's own folder; the server moves it to the job's ``out/`` if the run succeeds
    stem: str
    options: dict[str, Any]
    run: str = ""


def _load_runner(spec: str) -> Runner:
    module, _, name = spec.partition(":")
    factory = getattr(importlib.import_module(module), name)
    runner: Runner = factory()
    return runner


def _watch_server(server_pid: int, lifeline: Any) -> None:
    """Stop this worker when its server is gone: ``lifeline`` reads end of file once no process
    holds its other end (only the server does), and the parent pid changes when the worker is
    adopted. Checked every second; the pipe answers at once."""

    def watch() -> None:
        while os.getppid() == server_pid:
            try:
                if lifeline.poll(1.0):
                    lifeline.recv_bytes()  # the server never writes: this raises EOFError
            except (EOFError, OSError):
                break
        log.warning("worker %d: the server (pid %d) is gone; stopping", os.getpid(), server_pid)
        os.kill(os.getpid(), signal.SIGTERM)  # the conversion's clean-up runs on the main thread
        time.sleep(ORPHAN_GRACE_S)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="vp3d-server-watch").start()


def _worker_main(spec: str, tasks: Any, events: Any, server_pid: int, lifeline: Any) -> None:
    """A worker process: make the runner (models load here, once), then run tasks until None.
    SIGTERM or SIGINT ends it with status 128 + the signal's number, so the server can tell a stop
    from a crash."""
    from converters.interrupts import Interrupted, interrupts_raise

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the server's terminal is the server's to handle
    _watch_server(server_pid, lifeline)
    runner = _load_runner(spec)
    events.put(("ready", None, "", None))
    try:
        with interrupts_raise():
            _run_tasks(runner, tasks, events)
    except Interrupted as exc:
        raise SystemExit(exc.exit_code) from None


def _run_tasks(runner: Runner, tasks: Any, events: Any) -> None:
    from converters.errors import Vp3dError

    while True:
        task = tasks.get()
        if task is None:
            return
        try:
            result = runner(task, _Progress(task.job_id, task.run, events))
            events.put(("done", task.job_id, task.run, result))
        except Vp3dError as exc:
            events.put(("failed", task.job_id, task.run, str(exc)))
        except Exception as exc:  # a bug: say so, keep the worker
            log.error("job %s: %s", task.job_id, traceback.format_exc())
            events.put(("failed", task.job_id, task.run,
                        f"internal error ({type(exc).__name__}: {exc}); please report it"))


class _Progress:
    """Progress of one job to the server: a message per stage change or 1% step, not per frame."""

    def __init__(self, job_id: str, run: str, events: Any) -> None:
        self.job_id, self.run, self.events = job_id, run, events
        self.stage, self.fraction = "", -1.0

    def __call__(self, stage: str, fraction: float) -> None:
        if stage != self.stage or fraction - self.fraction >= 0.01 or fraction >= 1.0:
            self.stage, self.fraction = stage, float(fraction)
            self.events.put(("progress", self.job_id, self.run, (stage, float(fraction))))


class _Worker:
    def __init__(self, context: Any, spec: str, events: Any, lifeline: Any) -> None:
        self.tasks = context.Queue()
        self.process = context.Process(target=_worker_main, args=(spec, self.tasks, events, os.getpid(), lifeline),
                                       daemon=True)
        self.process.start()
        self.born = time.monotonic()
        self.job: str | None = None
        self.run = ""

    def terminate(self) -> None:
        if self.process.is_alive():
            self.process.terminate()

    def join(self, timeout: float = 10.0) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("worker %s did not stop within %g s of SIGTERM; killing it", self.process.pid, timeout)
            self.process.kill()
            self.process.join()
        self.tasks.close()
        self.tasks.join_thread()

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        self.join(timeout)


class WorkerPool:
    """``size`` workers fed from ``store``'s queue; ``on_change(job_id)`` is called after every update."""

    def __init__(self, store: JobStore, size: int, runner: str = "vp3d_engine.service.runner:make_runner",
                 on_change: Callable[[str], None] | None = None, max_attempts: int = 2) -> None:
        self.store, self.size, self.spec = store, size, runner
        self.on_change = on_change or (lambda job_id: None)
        self.max_attempts = max_attempts
        self._context = mp.get_context("spawn")
        self._events = self._context.Queue()
        # Workers hold the reading end; the writing end stays in this process alone (not inheritable),
        # so the workers read end of file the moment the server is gone.
        self._lifeline, self._lifeline_end = self._context.Pipe(duplex=False)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()  # the dispatcher: no more jobs handed out, no workers restarted
        self._drain = threading.Event()  # the collector: finish once no message is left
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True, name="vp3d-dispatch")
        self._collector = threading.Thread(target=self._collect, daemon=True, name="vp3d-collect")

    def _new_worker(self) -> _Worker:
        return _Worker(self._context, self.spec, self._events, self._lifeline)

    def start(self) -> None:
        self._workers = [self._new_worker() for _ in range(self.size)]
        self._dispatcher.start()
        self._collector.start()

    def stop(self) -> None:
        """Stop the workers (SIGTERM: the conversions clean up), keep the results that came in
        meanwhile, and queue the jobs they were running again without using up an attempt."""
        self._stop.set()
        if self._dispatcher.is_alive():
            self._dispatcher.join(timeout=5)
        with self._lock:
            workers = list(self._workers)  # kept in the pool until the last messages are read: they own their runs
        crashed = {id(w) for w in workers if not w.process.is_alive() and w.process.exitcode not in STOPPED}
        for worker in workers:  # all at once: each may take seconds to clean up
            worker.terminate()
        for worker in workers:
            worker.join()
        self._drain.set()
        if self._collector.is_alive():
            self._collector.join(timeout=5)
        for worker in workers:  # those still holding a job: stopped by us, or crashed just before
            if worker.job is not None:
                self.store.clean_runs(worker.job)
                if self.store.requeue(worker.job, count_attempt=id(worker) in crashed):
                    log.warning("job %s was running; it is queued again for the next start", worker.job)
                    self.on_change(worker.job)
        with self._lock:
            self._workers = []
        self._events.close()
        self._events.join_thread()
        self._lifeline_end.close()
        self._lifeline.close()

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
                    self.store.clean_runs(job_id)
                    self._workers[k] = self._new_worker()
                    return True
        return False

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for k, worker in enumerate(self._workers):
                    if not worker.process.is_alive():
                        if worker.job is not None:
                            self._lost(worker.job, worker.process.exitcode)
                        elif time.monotonic() - worker.born < RESTART_AFTER_S:
                            continue  # one that dies as it starts (a broken runner) is not restarted in a loop
                        else:
                            log.warning("an idle worker died (exit status %s); starting another",
                                        worker.process.exitcode)
                        self._workers[k] = worker = self._new_worker()
                    if worker.job is None:
                        job = self.store.claim_next()
                        if job is None:
                            break
                        run = secrets.token_hex(6)
                        folder = self.store.run_folder(job.id, run)
                        worker.job, worker.run = job.id, run
                        worker.tasks.put(Task(job.id, str(self.store.folder(job.id) / job.upload), str(folder),
                                              safe_stem(job.name), job.options, run))
                        self.on_change(job.id)
            self._stop.wait(0.1)

    def _lost(self, job_id: str, code: int | None) -> None:
        self.store.clean_runs(job_id)
        job = self.store.get(job_id)
        if job is None or job.state != "running":
            return
        if code in STOPPED:
            log.warning("the worker running job %s was stopped (exit status %s); the job is queued again", job_id,
                        code)
            self.store.requeue(job_id, count_attempt=False)
        elif job.attempts < self.max_attempts:
            log.warning("the worker running job %s died (exit status %s); the job is queued again", job_id, code)
            self.store.requeue(job_id)
        else:
            self.store.update_running(job_id, state="failed", finished=time.time(),
                              error=f"the worker stopped while converting (exit status {code}), {job.attempts} "
                                    "times; the video may need more memory than this server has: try a shorter "
                                    "part of it (start, end)")
        self.on_change(job_id)

    def _collect(self) -> None:
        while True:
            try:
                message = self._events.get(timeout=0.2)
            except queue.Empty:
                if self._drain.is_set():
                    return
                continue
            except (EOFError, OSError):
                return
            self._handle(*message)

    def _handle(self, kind: str, job_id: str | None, run: str, payload: Any) -> None:
        if job_id is None:
            return
        with self._lock:
            owner = next((w for w in self._workers if w.job == job_id and w.run == run), None)
            if owner is not None and kind != "progress":
                owner.job, owner.run = None, ""
        if owner is None:  # a run this server no longer owns: cancelled, or from a replaced worker
            if kind != "progress":
                shutil.rmtree(self.store.run_folder(job_id, run), ignore_errors=True)
            return
        if kind == "progress":
            stage, fraction = payload
            self.store.update_running(job_id, stage=stage, progress=fraction)  # only while running: not once cancelled
        elif kind == "done":
            self._commit(job_id, run, payload)
        else:
            shutil.rmtree(self.store.run_folder(job_id, run), ignore_errors=True)
            self.store.update_running(job_id, state="failed", finished=time.time(), error=str(payload))
        self.on_change(job_id)

    def _commit(self, job_id: str, run: str, result: dict[str, Any]) -> None:
        """Move the run's folder into place as the job's ``out/``, then mark the job done."""
        folder = self.store.folder(job_id)
        work, out = self.store.run_folder(job_id, run), folder / "out"
        try:
            shutil.rmtree(out, ignore_errors=True)
            if work.is_dir():
                os.replace(work, out)
            else:
                out.mkdir()
        except OSError as exc:
            log.error("job %s: the results could not be moved into place: %s", job_id, exc)
            self.store.update_running(job_id, state="failed", finished=time.time(),
                              error=f"the results could not be stored ({exc.strerror or exc}); is the data folder "
                                    "full or read-only?")
            return
        self.store.clean_runs(job_id)
        if not self.store.update_running(job_id, state="done", stage="done", progress=1.0, finished=time.time(),
                                 files=result["files"], timings=result.get("timings", {})):
            shutil.rmtree(out, ignore_errors=True)  # cancelled or deleted while the files moved
