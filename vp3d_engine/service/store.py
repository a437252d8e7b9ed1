"""Jobs of ``vp3d serve`` in SQLite, with their files in the data folder: a restart loses nothing.

Layout: ``DATA/jobs.sqlite`` and ``DATA/jobs/<id>/`` holding ``upload<.ext>`` and ``out/`` (the
result files, written by :func:`vp3d_engine.convert.convert` as one set: all or none). A worker
writes into its run's own folder, ``run-<token>/``, which the server that handed out that run
renames to ``out/`` when the run succeeds: two processes never write the same folder, even if a
worker outlives a killed server for a moment.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RUN_PREFIX", "STATES", "Job", "JobStore", "safe_stem"]

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL = ("done", "failed", "cancelled")
RUN_PREFIX = "run-"  # a run's private output folder inside the job's folder

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    name TEXT NOT NULL,
    upload TEXT NOT NULL,
    options TEXT NOT NULL,
    error TEXT,
    files TEXT NOT NULL DEFAULT '[]',
    timings TEXT NOT NULL DEFAULT '{}'
)
"""


def safe_stem(name: str) -> str:
    """A file name stem for a job's results from the name the client sent: letters, digits, ``-``
    and ``_`` of its last component only (never a path), at most 60 characters; ``clip`` if none."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    kept = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in stem).strip("_")[:60]
    return kept or "clip"


@dataclass
class Job:
    id: str
    state: str
    stage: str
    progress: float
    created: float
    started: float | None
    finished: float | None
    attempts: int
    name: str  # the uploaded file's name as the client gave it (shown, never used as a path)
    upload: str  # the stored upload's file name inside the job folder
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    files: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def public(self, queue_position: int | None) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "stage": self.stage, "progress": round(self.progress, 4),
                "queue_position": queue_position, "timings": self.timings, "error": self.error,
                "files": self.files, "name": self.name, "created": self.created, "options": self.options}


class JobStore:
    """Thread-safe access to the jobs table (one connection, one lock: SQLite writes are short)."""

    def __init__(self, data: Path) -> None:
        self.data = data
        (data / "jobs").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(data / "jobs.sqlite"), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def folder(self, job_id: str) -> Path:
        return self.data / "jobs" / job_id

    def run_folder(self, job_id: str, run: str) -> Path:
        """Where one run of a job writes its files (renamed to ``out/`` only by its own server)."""
        return self.folder(job_id) / f"{RUN_PREFIX}{run}"

    def new_id(self) -> str:
        return secrets.token_urlsafe(12)

    def add(self, job_id: str, name: str, upload: str, options: dict[str, Any]) -> Job:
        now = time.time()
        with self._lock:
            self._db.execute("INSERT INTO jobs (id, state, created, name, upload, options) VALUES (?, 'queued', ?, ?, "
                             "?, ?)", (job_id, now, name, upload, json.dumps(options)))
        job = self.get(job_id)
        assert job is not None
        return job

    def _row(self, row: tuple[Any, ...] | None) -> Job | None:
        if row is None:
            return None
        (job_id, state, stage, progress, created, started, finished, attempts, name, upload, options, error, files,
         timings) = row
        return Job(job_id, state, stage, progress, created, started, finished, attempts, name, upload,
                   json.loads(options), error, json.loads(files), json.loads(timings))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._row(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def update(self, job_id: str, **fields: Any) -> None:
        self._update(job_id, "", fields)

    def update_running(self, job_id: str, **fields: Any) -> bool:
        """:meth:`update` a job only if it is still running (not cancelled or deleted meanwhile);
        True if it was."""
        return self._update(job_id, " AND state = 'running'", fields)

    def _update(self, job_id: str, condition: str, fields: dict[str, Any]) -> bool:
        if not fields:
            return False
        values = [json.dumps(v) if k in ("files", "timings", "options") else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            cursor = self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?{condition}", (*values, job_id))
        return cursor.rowcount == 1

    def requeue(self, job_id: str, count_attempt: bool = True) -> bool:
        """Put a running job back in the queue; ``count_attempt=False`` gives back the attempt its
        claim took (the server or the worker was stopped on purpose: not the job's fault)."""
        refund = 0 if count_attempt else 1
        with self._lock:
            cursor = self._db.execute("UPDATE jobs SET state = 'queued', stage = '', progress = 0, "
                                      "attempts = MAX(attempts - ?, 0) WHERE id = ? AND state = 'running'",
                                      (refund, job_id))
        return cursor.rowcount == 1

    def claim_next(self) -> Job | None:
        """The oldest queued job, now marked running (one more attempt)."""
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE jobs SET state = 'running', stage = 'starting', progress = 0, started = ?, "
                             "attempts = attempts + 1 WHERE id = ?", (time.time(), row[0]))
        return self.get(row[0])

    def queue_position(self, job: Job) -> int | None:
        if job.state != "queued":
            return None
        with self._lock:
            ahead = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND created < ?",
                                     (job.created,)).fetchone()[0]
        return int(ahead) + 1

    def count(self, state: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0])

    def recover(self, max_attempts: int = 2) -> list[str]:
        """After a restart (call it before taking uploads): jobs that were running when the server
        died are queued again (once), or failed with the reason; their runs' folders are cleared.
        Folders without a job (an upload cut off by a kill) are removed (:meth:`clean_orphans`)."""
        self.clean_orphans()
        with self._lock:
            rows = self._db.execute("SELECT id, attempts FROM jobs WHERE state = 'running'").fetchall()
        requeued = []
        for job_id, attempts in rows:
            shutil.rmtree(self.folder(job_id) / "out", ignore_errors=True)
            self.clean_runs(job_id)
            if attempts < max_attempts:
                self.update(job_id, state="queued", stage="", progress=0.0)
                requeued.append(job_id)
            else:
                self.update(job_id, state="failed", finished=time.time(),
                            error=f"the server stopped while this job ran ({attempts} times); upload it again")
        return requeued

    def clean_runs(self, job_id: str) -> None:
        """Remove the job's run folders: what stopped, failed or stale runs left."""
        for path in self.folder(job_id).glob(f"{RUN_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)

    def orphan_folders(self, older_than: float | None = None) -> list[Path]:
        """Entries of ``DATA/jobs/`` that belong to no job: an upload cut off by a killed server.
        ``older_than`` (a time): only those untouched since then, so that an upload still arriving
        (its folder exists before its job does) is left alone; ``None``: all (at start)."""
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT id FROM jobs").fetchall()}
        found = []
        for path in sorted((self.data / "jobs").iterdir()):
            if path.name in known:
                continue
            if older_than is not None and _last_touched(path) >= older_than:
                continue
            found.append(path)
        return found

    def clean_orphans(self, older_than: float | None = None) -> list[str]:
        """Remove :meth:`orphan_folders` (same ``older_than``); returns their names. At start:
        ``clean_orphans()``; in a periodic sweep: ``clean_orphans(time.time() - 3600)``."""
        removed = []
        for path in self.orphan_folders(older_than):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path.name)
        if removed:
            log.warning("removed %d upload folder(s) without a job (uploads cut off by a stop): %s", len(removed),
                        ", ".join(removed))
        return removed

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def expired(self, older_than: float) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND "
                                    "finished < ?", (older_than,)).fetchall()
        return [r[0] for r in rows]


def _last_touched(path: Path) -> float:
    """The newest modification time of ``path`` and what it directly holds (a file being uploaded
    changes as it grows; its folder only when the file is made)."""
    try:
        times = [path.lstat().st_mtime]
        if path.is_dir() and not path.is_symlink():
            times += [p.lstat().st_mtime for p in path.iterdir()]
    except FileNotFoundError:  # removed meanwhile
        return float("inf")
    return max(times)
