"""The engine behind the add-on, without bpy: the local ``vp3d-convert`` subprocess or a ``vp3d
serve`` service over HTTP. Both run in the background and are polled from Blender's main thread
(a modal operator's timer), so Blender never waits on them; both leave a Motion file in a
temporary folder that the caller owns and deletes.

Only the standard library: Blender's Python has no ``requests``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EngineError", "EngineOptions", "Job", "LocalJob", "RemoteJob", "find_convert", "list_backends_local",
           "list_backends_remote"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
_CHUNK = 1 << 20


class EngineError(Exception):
    """The engine said no: the message is the engine's own, for Blender's report."""


@dataclass
class EngineOptions:
    rig: str = "mixamo"
    detector: str = "mediapipe"
    checkpoint: str = "default"
    lifter: str = "videopose3d"
    root_motion: str = "on"
    feet: str = "lock"
    smooth: str = "auto"
    start: float = 0.0  # seconds into the video; 0 = from the start
    end: float = 0.0  # seconds; 0 = to the end
    person: int = 0
    mediapipe_3d: float = 0.5  # share of MediaPipe's own 3D blended into the lifted pose

    def convert_arguments(self) -> list[str]:
        args = ["--rig", self.rig, "--detector", self.detector, "--lifter", self.lifter, "--root-motion",
                self.root_motion, "--feet", self.feet, "--smooth", self.smooth, "--person", str(self.person),
                "--mediapipe-3d", f"{self.mediapipe_3d:g}"]
        if self.lifter == "videopose3d":
            args += ["--checkpoint", self.checkpoint]
        if self.start > 0:
            args += ["--start", f"{self.start:g}"]
        if self.end > 0:
            args += ["--end", f"{self.end:g}"]
        return args

    def form_fields(self) -> dict[str, str]:
        fields = {"rig": self.rig, "detector": self.detector, "checkpoint": self.checkpoint, "lifter": self.lifter,
                  "root_motion": self.root_motion, "feet": self.feet, "smooth": self.smooth,
                  "person": str(self.person), "mediapipe_3d": f"{self.mediapipe_3d:g}", "formats": "motion"}
        if self.start > 0:
            fields["start"] = f"{self.start:g}"
        if self.end > 0:
            fields["end"] = f"{self.end:g}"
        return fields


@dataclass
class Status:
    state: str = "running"  # running, done, failed, cancelled
    stage: str = "starting"
    fraction: float = 0.0
    message: str = ""
    motion: Path | None = None


class Job:
    """One conversion in the background. :meth:`poll` never blocks; :meth:`cancel` stops the work
    and removes what it wrote; :meth:`close` removes the temporary folder (the Motion file too)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vp3d-blender-"))
        self.status = Status()
        self._lock = threading.Lock()

    def poll(self) -> Status:
        with self._lock:
            return Status(**self.status.__dict__)

    def _set(self, **changes: object) -> None:
        with self._lock:
            if self.status.state != "running":
                return  # the job has ended (done, failed, cancelled): a late report changes nothing
            for key, value in changes.items():
                setattr(self.status, key, value)

    def cancel(self) -> None:
        self._set(state="cancelled", message="cancelled")

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> Status:
        """Poll until the job ends (for background mode and scripts)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.poll()
            if status.state != "running":
                return status
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                return self.poll()
            time.sleep(interval)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def find_convert(configured: str = "") -> str | None:
    """The ``vp3d-convert`` to run: the add-on preference, else ``$VP3D_CONVERT``, else on PATH,
    else next to this Python (a venv with both Blender's module and vp3d)."""
    for candidate in (configured, os.environ.get("VP3D_CONVERT", "")):
        if candidate:
            return candidate if Path(candidate).is_file() else shutil.which(candidate)
    found = shutil.which("vp3d-convert")
    if found:
        return found
    sibling = Path(sys.executable).with_name("vp3d-convert")
    return str(sibling) if sibling.is_file() else None


class LocalJob(Job):
    """``vp3d-convert VIDEO --motion --progress-lines`` as a subprocess."""

    def __init__(self, executable: str, video: str | Path, options: EngineOptions) -> None:
        super().__init__()
        self.video = Path(video)
        command = [executable, str(self.video), "--motion", "--out", str(self.folder), "--quiet", "--progress-lines",
                   *options.convert_arguments()]
        self._errors: list[str] = []
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                            bufsize=1)
        except OSError as exc:
            self.close()
            raise EngineError(f"cannot run {executable}: {exc.strerror or exc}; set the path to vp3d-convert in "
                              "the add-on's preferences") from None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            words = line.split()
            if len(words) == 4 and words[0] == "vp3d-progress":
                try:
                    self._set(stage=words[1], fraction=float(words[3]))
                except ValueError:
                    pass
            elif line.strip():
                self._errors.append(line.rstrip())
        self.process.stderr.close()
        code = self.process.wait()
        motion = self.folder / (self.video.stem + ".motion.npz")
        if code == 0 and motion.is_file():
            self._set(state="done", stage="done", fraction=1.0, motion=motion)
        else:
            said = [e for e in self._errors if "error" in e.lower()] or self._errors[-3:]
            message = "\n".join(said) or f"vp3d-convert stopped with exit status {code}"
            self._set(state="failed", message=message.replace("vp3d-convert: error: ", ""))

    def cancel(self) -> None:
        super().cancel()
        if self.process.poll() is None:
            self.process.terminate()  # vp3d-convert removes its temporary files on SIGTERM
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.close()


def _request(url: str, token: str = "", method: str = "GET", data: object = None,
             headers: dict[str, str] | None = None, timeout: float = 30.0) -> bytes:
    request = urllib.request.Request(url, method=method, data=data, headers=dict(headers or {}))  # type: ignore[arg-type]
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        try:
            detail = json.loads(body).get("detail", body)
        except (ValueError, AttributeError):
            detail = body
        raise EngineError(f"the service answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EngineError(f"cannot reach the vp3d service at {url}: {reason}; is `vp3d serve` running and the URL "
                          "in the add-on's preferences right?") from None


def _multipart(fields: dict[str, str], path: Path, boundary: str) -> tuple[Iterator[bytes], int]:
    """A multipart/form-data body streamed from the file (never all in memory) and its length."""
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    name = path.name.replace('"', "_")
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk
        yield tail

    return body(), len(head) + path.stat().st_size + len(tail)


class RemoteJob(Job):
    """Upload to ``vp3d serve``, follow the job, download its Motion file (in a thread)."""

    def __init__(self, url: str, token: str, video: str | Path, options: EngineOptions) -> None:
        super().__init__()
        self.base = url.rstrip("/")
        self.token = token
        self.video = Path(video)
        self.options = options
        self.job_id: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._set(stage="upload")
            boundary = uuid.uuid4().hex
            body, length = _multipart(self.options.form_fields(), self.video, boundary)
            answer = json.loads(_request(f"{self.base}/api/jobs", self.token, "POST", body, {
                "Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)},
                timeout=600))
            self.job_id = str(answer["id"])
            while not self._stop.is_set():
                job = json.loads(_request(f"{self.base}/api/jobs/{urllib.parse.quote(self.job_id)}", self.token))
                state = job.get("state")
                if state == "done":
                    names = [n for n in job.get("files", []) if str(n).endswith(".motion.npz")]
                    if not names:
                        raise EngineError("the service finished without a Motion file")
                    target = self.folder / "result.motion.npz"
                    data = _request(f"{self.base}/api/jobs/{urllib.parse.quote(self.job_id)}/files/"
                                    f"{urllib.parse.quote(names[0])}", self.token, timeout=600)
                    partial = target.with_suffix(".part")
                    partial.write_bytes(data)
                    partial.replace(target)
                    self._set(state="done", stage="done", fraction=1.0, motion=target)
                    return
                if state in ("failed", "cancelled"):
                    raise EngineError(str(job.get("error") or f"the job was {state} on the service"))
                self._set(stage=str(job.get("stage") or state), fraction=float(job.get("progress") or 0.0))
                self._stop.wait(0.25)
        except EngineError as exc:
            self._set(state="failed", message=str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            self._set(state="failed", message=f"the service's answer was not understood: {exc}")

    def cancel(self) -> None:
        super().cancel()
        self._stop.set()
        if self.job_id is not None:
            try:
                _request(f"{self.base}/api/jobs/{urllib.parse.quote(self.job_id)}", self.token, "DELETE", timeout=10)
            except EngineError:
                pass  # the service may be gone: nothing of it is left here
        self._thread.join(timeout=5)
        self.close()


def list_backends_local(executable: str) -> dict[str, object]:
    """What the local engine offers (``vp3d list --json``), for the panel's menus."""
    vp3d = str(Path(executable).with_name("vp3d"))
    try:
        done = subprocess.run([vp3d, "list", "--json"], capture_output=True, text=True, timeout=120)
    except OSError as exc:
        raise EngineError(f"cannot run {vp3d}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise EngineError(done.stderr.strip() or f"vp3d list stopped with exit status {done.returncode}")
    return dict(json.loads(done.stdout))


def list_backends_remote(url: str, token: str = "") -> dict[str, object]:
    """What the service offers (``GET /api/backends``)."""
    return dict(json.loads(_request(f"{url.rstrip('/')}/api/backends", token)))
