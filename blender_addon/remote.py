"""The add-on's client for ``vp3d serve``: its API (upload, status, files, delete, menus) over
``bounded_http.py``, so every request keeps to the Service URL's origin, has a deadline and a size
bound (:class:`RemoteLimits`). Every reply is hostile until checked: JSON is parsed with its
nesting caught, and its type and fields are checked before use; the Motion file is streamed to
disk. Every failure is one :class:`EngineError` sentence that says what to check.
"""

from __future__ import annotations

import http.client
import json
import re
import reprlib
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bounded_http import Deadline, Expired, Redirected, TooBig, opener, origin, read_body

__all__ = ["STATES", "EngineError", "JobReply", "RemoteLimits", "Service", "check_menus", "multipart"]

STATES = ("queued", "running", "done", "failed", "cancelled")
_CHECK = "is the Service URL in the add-on's preferences a vp3d service (`vp3d serve`) of this version?"
_JOB_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlevel = 60, 60, 3


class EngineError(Exception):
    """The engine said no: the message says why and what to do, for Blender's report."""


@dataclass(frozen=True)
class RemoteLimits:
    """How long and how much the add-on takes from a service before it gives up on a request."""

    reply_s: float = 30.0  #: a JSON request (a job's status, the menus), start to end
    transfer_s: float = 3600.0  #: the video's upload and the Motion file's download, each start to end
    idle_s: float = 30.0  #: the longest wait for a byte (the socket timeout)
    reply_bytes: int = 64 << 10  #: a job's status, the upload's answer, an error's text
    menus_bytes: int = 1 << 20  #: GET /api/backends (it carries the options' definitions)
    #: the Motion file: a Motion file holds at most 512 MiB of arrays (converters/motion_file.py's
    #: MAX_MOTION_BYTES, checked again when it is read), plus its zip headers and meta
    motion_bytes: int = 576 << 20
    poll_s: float = 0.25  #: between two status requests


@dataclass(frozen=True)
class JobReply:
    """A job's status as the service sent it, checked: ``state`` one of :data:`STATES`,
    ``progress`` in [0, 1], ``files`` plain file names, ``stage`` and ``error`` one line each."""

    state: str
    stage: str
    progress: float
    files: tuple[str, ...]
    error: str


class _WriteFailed(Exception):
    """Writing what the service sent failed on this computer (a full disk)."""


class _Unexpected(ValueError):
    """A reply of the wrong shape: what is wrong with it, for the message."""


def _short(value: Any, size: int = 60) -> str:
    """``value`` for a message: its repr, bounded in depth and length, one line."""
    return _one_line(_REPR.repr(value), size)


def _one_line(text: str, size: int) -> str:
    text = " ".join("".join(c if c.isprintable() else " " for c in text[:4 * size]).split())
    return text if len(text) <= size else text[:size - 3] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a JSON boolean"
    if value is None:
        return "JSON null"
    names = {dict: "a JSON object", list: "a JSON array", str: "a JSON string", int: "a JSON number",
             float: "a JSON number"}
    return names.get(type(value), type(value).__name__)


def _size(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def check_service_url(url: str) -> str:
    """The Service URL without a trailing slash, if it is an http(s) address."""
    base = url.strip().rstrip("/")
    found = origin(base)
    if found is None or found[0] not in ("http", "https") or not found[1]:
        raise EngineError(f"the Service URL {_short(base)} is not an http:// or https:// address: set it in the "
                          "add-on's preferences (for a service on this computer, http://127.0.0.1:8000)")
    return base


def multipart(fields: Mapping[str, str], path: Path, boundary: str) -> tuple[Iterator[bytes], int]:
    """A multipart/form-data body streamed from the file (never all in memory) and its length."""
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    name = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
        yield tail

    return body(), len(head) + size + len(tail)


def check_job_status(reply: Any) -> JobReply:
    if not isinstance(reply, dict):
        raise _Unexpected(f"{_kind(reply)}, not an object")
    state = reply.get("state")
    if not isinstance(state, str) or state not in STATES:
        raise _Unexpected(f"state {_short(state)}, not one of {', '.join(STATES)}")
    progress = reply.get("progress", 0.0)
    if isinstance(progress, bool) or not isinstance(progress, int | float) or not 0.0 <= progress <= 1.0:
        raise _Unexpected(f"progress {_short(progress)}, not a number from 0 to 1")
    stage = reply.get("stage") or state
    if not isinstance(stage, str):
        raise _Unexpected(f"stage {_short(stage)}, not a name")
    files = reply.get("files", [])
    if not (isinstance(files, list) and len(files) <= 1000 and all(_plain_name(n) for n in files)):
        raise _Unexpected(f"files {_short(files)}, not a list of file names")
    error = reply.get("error")
    if error is not None and not isinstance(error, str):
        raise _Unexpected(f"error {_short(error)}, not a sentence")
    return JobReply(state, _one_line(stage, 40), float(progress), tuple(files), _one_line(error or "", 500))


def _plain_name(name: Any) -> bool:
    return (isinstance(name, str) and 0 < len(name) <= 255 and name not in (".", "..") and name.isprintable()
            and not any(c in name for c in "/\\:"))


def check_menus(reply: Any) -> dict[str, list[dict[str, str]]]:
    """``detectors`` (name, description) and ``checkpoints`` (name, lifter) from ``vp3d list
    --json`` or ``GET /api/backends``, checked; either may be missing."""
    if not isinstance(reply, dict):
        raise _Unexpected(f"{_kind(reply)}, not an object")
    out: dict[str, list[dict[str, str]]] = {}
    for key, extra in (("detectors", "description"), ("checkpoints", "lifter")):
        items = reply.get(key, [])
        if not isinstance(items, list) or len(items) > 200:
            raise _Unexpected(f"{key} {_short(items)}, not a list")
        out[key] = []
        for item in items:
            name = item.get("name") if isinstance(item, dict) else None
            text = item.get(extra, "") if isinstance(item, dict) else None
            if not (isinstance(name, str) and 0 < len(name) <= 64 and name.isprintable()) or not isinstance(text, str):
                raise _Unexpected(f"{key} entry {_short(item)}, not a name and a {extra}")
            out[key].append({"name": name, extra: _one_line(text, 200)})
    return out


class Service:
    """Requests to one ``vp3d serve`` at ``url``, within ``limits``; every failure is an
    :class:`EngineError` that says what happened and what to check."""

    def __init__(self, url: str, token: str = "", limits: RemoteLimits | None = None) -> None:
        self.base = check_service_url(url)
        self.token = token
        self.limits = limits or RemoteLimits()
        self._lock = threading.Lock()
        self._current: Deadline | None = None
        self._aborted = False

    def abort(self) -> None:
        """End the request under way (from another thread) and refuse any after it."""
        with self._lock:
            self._aborted = True
            current = self._current
        if current is not None:
            current.expire()

    # --- vp3d serve's API ---

    def submit(self, video: Path, fields: Mapping[str, str], boundary: str) -> str:
        """Upload ``video`` with the form's ``fields``; the new job's id."""
        try:
            body, length = multipart(fields, video, boundary)
        except OSError as exc:
            raise EngineError(f"cannot read the video {video}: {exc.strerror or exc}") from None
        what = "its answer to the upload"
        reply = self._json("/api/jobs", what, method="POST", data=body, seconds=self.limits.transfer_s, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)})
        job_id = reply.get("id") if isinstance(reply, dict) else None
        if not (isinstance(job_id, str) and _JOB_ID.fullmatch(job_id)):
            raise self._unexpected(what, f"id {_short(job_id)}" if isinstance(reply, dict) else _kind(reply))
        return job_id

    def status(self, job_id: str) -> JobReply:
        what = "the job's status"
        try:
            return check_job_status(self._json(f"/api/jobs/{urllib.parse.quote(job_id)}", what))
        except _Unexpected as exc:
            raise self._unexpected(what, str(exc)) from None

    def fetch(self, job_id: str, name: str, target: Path) -> None:
        """Stream file ``name`` of the job to ``target`` (through ``target.part``, removed on failure)."""
        partial = target.with_name(target.name + ".part")
        path = f"/api/jobs/{urllib.parse.quote(job_id)}/files/{urllib.parse.quote(name)}"
        try:
            with partial.open("wb") as f:
                self._request(path, "the Motion file", f.write, self.limits.motion_bytes, self.limits.transfer_s)
            partial.replace(target)
        except OSError as exc:
            raise EngineError(f"cannot write the Motion file in {target.parent}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)

    def delete(self, job_id: str) -> None:
        self._request(f"/api/jobs/{urllib.parse.quote(job_id)}", "the job's deletion", lambda _: None,
                      self.limits.reply_bytes, min(10.0, self.limits.reply_s), method="DELETE")

    def menus(self) -> dict[str, list[dict[str, str]]]:
        what = "its menus (detectors and lifters)"
        try:
            return check_menus(self._json("/api/backends", what, max_bytes=self.limits.menus_bytes))
        except _Unexpected as exc:
            raise self._unexpected(what, str(exc)) from None

    # --- any request ---

    def _unexpected(self, what: str, why: str) -> EngineError:
        return EngineError(f"the service at {self.base} sent {what} the add-on does not understand ({why}): {_CHECK}")

    def _json(self, path: str, what: str, *, max_bytes: int | None = None, seconds: float | None = None,
              **request: Any) -> Any:
        data = bytearray()
        self._request(path, what, data.extend, max_bytes or self.limits.reply_bytes, seconds or self.limits.reply_s,
                      **request)
        try:
            return json.loads(bytes(data))
        except RecursionError:
            raise EngineError(f"the service at {self.base} sent {what} as JSON nested too deeply to read: "
                              f"{_CHECK}") from None
        except ValueError as exc:
            raise EngineError(f"the service at {self.base} sent {what} that is not JSON ({_one_line(str(exc), 80)}): "
                              f"{_CHECK}") from None

    def _request(self, path: str, what: str, sink: Callable[[bytes], object], max_bytes: int, seconds: float,
                 method: str = "GET", data: Any = None, headers: Mapping[str, str] | None = None) -> None:
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=dict(headers or {}))
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")

        def write(chunk: bytes) -> None:
            try:
                sink(chunk)
            except OSError as exc:  # the disk here, not the service
                raise _WriteFailed(exc.strerror or str(exc)) from None

        deadline = Deadline(seconds)
        with self._lock:
            aborted, self._current = self._aborted, deadline
        try:
            if aborted:
                raise Expired
            with opener(deadline).open(request, timeout=self.limits.idle_s) as response:
                read_body(response, write, max_bytes, deadline)
        except Expired:
            raise self._late(what, seconds) from None
        except TooBig:
            raise EngineError(f"the service at {self.base} sent {what} of more than {_size(max_bytes)}: the add-on "
                              f"stops reading there; {_CHECK}") from None
        except _WriteFailed as exc:
            raise EngineError(f"cannot write {what} on this computer: {exc}") from None
        except Redirected as exc:
            new = origin(exc.target)
            where = f"{new[0]}://{new[1]}:{new[2]}" if new else "that address"
            raise EngineError(f"the service at {self.base} redirected {what} to {_one_line(exc.target, 200)}: "
                              "the add-on does not follow redirects off the Service URL's scheme, host and port (nor "
                              f"sends the token there); if the service now lives at {where}, set the Service URL in "
                              "the add-on's preferences to it") from None
        except urllib.error.HTTPError as exc:
            with exc:
                detail = self._error_text(exc, deadline)
            raise EngineError(f"the service at {self.base} answered {exc.code} to {what}: {detail}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if deadline.expired:
                raise self._late(what, seconds) from None
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise EngineError(f"the service at {self.base} sent nothing for {self.limits.idle_s:g} s while "
                                  f"sending {what}: is `vp3d serve` running there and reachable?") from None
            said = _one_line(str(reason), 200)
            raise EngineError(f"cannot reach the vp3d service at {self.base} ({what}): {said}; is `vp3d serve` "
                              "running and the Service URL in the add-on's preferences right?") from None
        finally:
            deadline.finish()
            with self._lock:
                self._current = None

    def _late(self, what: str, seconds: float) -> EngineError:
        return EngineError(f"the service at {self.base} took longer than {seconds:g} s to send {what}: it may be "
                           f"overloaded, or not a vp3d service; try again, or check the Service URL in the add-on's "
                           "preferences")

    def _error_text(self, exc: urllib.error.HTTPError, deadline: Deadline) -> str:
        """The error's ``detail`` (FastAPI's), else its text, else its reason: bounded, one line."""
        data = bytearray()
        try:
            if exc.fp is not None:
                read_body(exc, data.extend, self.limits.reply_bytes, deadline)
            body = json.loads(bytes(data))
            detail = body.get("detail") if isinstance(body, dict) else None
            text = detail if isinstance(detail, str) else bytes(data).decode("utf-8", "replace")
        except (TooBig, Expired, OSError, http.client.HTTPException, ValueError, RecursionError):
            text = bytes(data[:300]).decode("utf-8", "replace") if data and data[:1] not in b"[{" else ""
        return _one_line(text, 300) or str(exc.reason)
