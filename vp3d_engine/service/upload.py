"""An upload to ``vp3d serve``, received and checked before it becomes a job.

The multipart body is parsed as it streams in, bounded in every dimension before anything is kept:
the whole body (``--max-upload-mb``), the number of parts (the service's options and one file), each
field's size, each part's headers; one file part, named ``file``, is written straight to disk (one
open file, closed at the end, whatever happens); a second file part, an unknown field, a field
that is too long or a malformed body is refused at once with a 4xx that says what to send. The
caller removes the job's folder when anything is refused, so nothing of a refused upload stays.

The video is then checked as a real video whose work is bounded (:func:`check_video`): seconds,
frames (counted from the packets when the container does not say, or says something else) and
pixels x frames, of the stretch the options select.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import Request

from converters.options import MAX_TEXT, options_for
from vp3d_engine.sources import VIDEO_SUFFIXES

__all__ = ["Limits", "Problem", "Upload", "check_video", "drain", "receive_upload"]

#: Parts a body may hold: one per option the service takes, and the file.
MAX_PARTS = len(options_for("service")) + 1
#: Bytes of one form field (the longest option value, in UTF-8, with room).
MAX_FIELD_BYTES = 4 * MAX_TEXT
#: The multipart framing around the file, beyond the upload limit (boundaries, headers, fields).
OVERHEAD_BYTES = MAX_PARTS * (MAX_FIELD_BYTES + 4096)
#: A too-large upload is still read (and dropped) up to this much past the limit before the 413,
#: so that a client still sending gets the answer rather than a broken pipe; a far larger one is cut off.
DRAIN_BYTES = 32 * 1024 * 1024


class Problem(Exception):
    """A request refused with ``status`` and a message for the user."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


@dataclass(frozen=True)
class Limits:
    """What one job may cost: bytes uploaded, seconds, frames and pixels x frames of video."""

    max_upload_bytes: int
    max_duration_s: float
    max_frames: int
    max_pixel_frames: float

    def describe(self) -> dict[str, Any]:
        return {"max_upload_mb": self.max_upload_bytes / 1e6, "max_duration_s": self.max_duration_s,
                "max_frames": self.max_frames, "max_pixel_frames": self.max_pixel_frames}


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    name: str = ""  # the file's name as the client sent it (a label, never a path)
    stored: str = ""  # the stored file's name inside the job's folder
    size: int = 0


def _plain_name(raw: bytes) -> str:
    name = raw.decode("utf-8", "replace")
    if (any(c in name for c in "/\\\0") or name.startswith(".") or not name.isprintable() or len(name) > 255
            or not name.strip()):
        raise Problem(400, f"the file name {name[:80]!r} is a path or not a plain name; send the file under its "
                           "own name, e.g. clip.mp4")
    return name


class _Receiver:
    """The callbacks of python-multipart's streaming parser: every part checked as it comes."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder, self.limit = folder, limit
        self.upload = Upload()
        self.parts = 0
        self.header_name = b""
        self.headers: dict[bytes, bytes] = {}
        self.current: str | None = None  # the field being read; "" while the file is
        self.value = bytearray()
        self.file: IO[bytes] | None = None
        self.file_done = False

    def callbacks(self) -> Any:  # python-multipart's MultipartCallbacks
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end}

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise Problem(400, f"the upload has more than {MAX_PARTS} parts; send the video in a field named 'file' "
                               "and each option once")
        self.headers, self.header_name, self.value = {}, b"", bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        key = self.header_name.lower()
        self.headers[key] = self.headers.get(key, b"") + data[start:end]

    def header_end(self) -> None:
        self.header_name = b""

    def headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        kind, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = params.get(b"name")
        if kind != b"form-data" or not name:
            raise Problem(400, "every part of the upload needs Content-Disposition: form-data with a name")
        field_name = name.decode("utf-8", "replace")
        if b"filename" in params:
            if field_name != "file" or self.file_done or self.file is not None:
                raise Problem(400, "send one video, in a form field named 'file' (this upload has another file "
                                   f"part, {field_name[:40]!r})")
            self.upload.name = _plain_name(params[b"filename"])
            suffix = Path(self.upload.name).suffix.lower()
            self.upload.stored = "upload" + (suffix if suffix in VIDEO_SUFFIXES else ".video")
            self.folder.mkdir(parents=True, exist_ok=True)
            self.file = open(self.folder / self.upload.stored, "xb")
            self.current = ""
            return
        if field_name == "file" or field_name in self.upload.fields:
            raise Problem(400, f"the field {field_name[:40]!r} is given twice" if field_name != "file" else
                          "the field 'file' must be a file: send the video as a file upload")
        self.current = field_name

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.current == "" and self.file is not None:
            self.upload.size += end - start
            if self.upload.size > self.limit:
                raise Problem(413, f"the upload is larger than the limit of {self.limit / 1e6:.0f} MB")
            self.file.write(data[start:end])
            return
        self.value += data[start:end]
        if len(self.value) > MAX_FIELD_BYTES:
            raise Problem(413, f"the form field {str(self.current)[:40]!r} is longer than {MAX_FIELD_BYTES} bytes; "
                               "options are short words and numbers")

    def part_end(self) -> None:
        if self.current == "":
            self.close()
            self.file_done = True
        elif self.current is not None:
            try:
                self.upload.fields[self.current] = bytes(self.value).decode("utf-8")
            except UnicodeDecodeError:
                raise Problem(400, f"the form field {self.current[:40]!r} is not UTF-8 text") from None
        self.current, self.value = None, bytearray()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


async def drain(request: Request, cap: int = DRAIN_BYTES) -> None:
    """Read and drop what the client is still sending, up to ``cap`` bytes: a client still sending
    when it is answered sees a reset, not the answer."""
    from starlette.requests import ClientDisconnect

    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > cap:
                return
    except (RuntimeError, ClientDisconnect):  # read to the end already, or the client has gone
        return


async def receive_upload(request: Request, folder: Path, limit: int) -> Upload:
    """Stream a multipart body into ``folder`` (created here): the form fields, the client's file
    name, the stored file's name (``upload`` plus a known video suffix). Raises :class:`Problem`."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise Problem(415, "send the video as multipart/form-data in a field named 'file'")
    declared = request.headers.get("content-length")
    cap = limit + OVERHEAD_BYTES
    if declared and declared.isdigit() and int(declared) > cap:
        await drain(request, cap + DRAIN_BYTES)
        raise Problem(413, f"the upload is larger than the limit of {limit / 1e6:.0f} MB")
    receiver = _Receiver(folder, limit)
    parser = MultipartParser(boundary, receiver.callbacks(), max_size=cap, max_header_count=4, max_header_size=1024)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > cap:
                raise Problem(413, f"the upload is larger than the limit of {limit / 1e6:.0f} MB")
            parser.write(chunk)
        parser.finalize()
    except (Problem, FormParserError) as exc:
        receiver.close()
        await drain(request)  # the rest (bounded), dropped: the client gets the answer
        if isinstance(exc, Problem):
            raise
        raise Problem(400, f"the upload is not a well-formed multipart/form-data body ({exc}); send the video "
                           "in a field named 'file'") from None
    finally:
        receiver.close()
    upload = receiver.upload
    if not upload.stored:
        raise Problem(400, "no file: send the video in a form field named 'file'")
    if not receiver.file_done:
        raise Problem(400, "the upload ended before the file did; send it again")
    if upload.size == 0:
        raise Problem(400, f"{upload.name}: the file is empty; choose a video")
    return upload


def check_video(path: Path, name: str, limits: Limits, start: float | None, end: float | None) -> None:
    """``path`` is a video vp3d reads, and the stretch ``start``-``end`` (seconds) is within the
    limits. Raises :class:`Problem` (415 not a video, 422 too long or too big)."""
    from converters.errors import Vp3dError
    from vp3d_engine.video import count_frames, probe_video

    try:
        info = probe_video(path)
        counted, span = count_frames(path, limits.max_frames * 4)
    except Vp3dError as exc:
        raise Problem(415, str(exc).replace(str(path), name)) from None
    frames = max(counted, info.frames or 0)
    duration = max(info.duration_s or 0.0, span, frames / info.fps if info.fps else 0.0)
    if start is not None and start >= duration:
        raise Problem(422, f"{name}: start ({start:g} s) is past the end of the video ({duration:.1f} s)")
    stretch = min(end if end is not None else duration, duration) - (start or 0.0)
    share = stretch / duration if duration > 0 else 1.0
    seconds, work_frames = stretch, math.ceil(frames * share)
    cut = "cut it (start/end), or run vp3d-convert yourself"
    if seconds > limits.max_duration_s:
        raise Problem(422, f"{name}: {seconds:.0f} s to convert; this service takes at most "
                           f"{limits.max_duration_s:g} s ({cut})")
    if work_frames > limits.max_frames:
        raise Problem(422, f"{name}: {work_frames:,} frames to convert ({info.fps:g} frames per second); this "
                           f"service takes at most {limits.max_frames:,} ({cut})")
    pixels = float(info.width) * info.height * work_frames
    if pixels > limits.max_pixel_frames:
        raise Problem(422, f"{name}: {work_frames:,} frames of {info.width}x{info.height} pixels is more than this "
                           f"service decodes ({limits.max_pixel_frames:.3g} pixels in all); scale it down or {cut}")
