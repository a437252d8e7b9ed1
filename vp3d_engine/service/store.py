"""Jobs of ``vp3d serve`` in SQLite, with their files in the data folder: a restart loses nothing.

Layout: ``DATA/jobs.sqlite`` and ``DATA/jobs/<id>/`` holding ``upload<.ext>`` and ``out/`` (the
result files, written by :func:`vp3d_engine.convert.convert` as one set: all or none).
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STATES", "Job", "JobStore", "safe_stem"]

STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL = ("done", "failed", "cancelled")

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
        if not fields:
            return
        values = [json.dumps(v) if k in ("files", "timings", "options") else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values, job_id))

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
        """After a restart: jobs that were running are queued again (once), or failed with the reason.
        Their partial output (none is ever half-written, but a set may be missing) is cleared."""
        with self._lock:
            rows = self._db.execute("SELECT id, attempts FROM jobs WHERE state = 'running'").fetchall()
        requeued = []
        for job_id, attempts in rows:
            shutil.rmtree(self.folder(job_id) / "out", ignore_errors=True)
            if attempts < max_attempts:
                self.update(job_id, state="queued", stage="", progress=0.0)
                requeued.append(job_id)
            else:
                self.update(job_id, state="failed", finished=time.time(),
                            error=f"the server stopped while this job ran ({attempts} times); upload it again")
        return requeued

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def expired(self, older_than: float) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND "
                                    "finished < ?", (older_than,)).fetchall()
        return [r[0] for r in rows]
