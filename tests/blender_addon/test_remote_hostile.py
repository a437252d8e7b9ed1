"""The add-on's remote engine against a service that is broken or hostile (issue 27, items 9 and 10):
the token never leaves the Service URL's origin, redirects to other schemes are refused, every
reply is bounded in size and time and checked before it is used, and a job always ends (failed,
with one clear message) with no thread of the add-on left running. Every service here is a real
HTTP server on loopback; the engine is the one installed in Blender from the zip."""

from __future__ import annotations

import json
import re
import socketserver
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.blender

Answer = Callable[[BaseHTTPRequestHandler], None]
STATUS_DONE = {"id": "1", "state": "done", "stage": "write", "progress": 1.0, "error": None,
               "files": ["clip.bvh", "clip.motion.npz"]}
MOTION = b"PK-a-motion-file"  # only downloaded, never read, unless a test says so


@contextmanager
def _service(answer: Answer) -> Iterator[tuple[str, list[tuple[str, str, dict[str, str]]]]]:
    """An HTTP server on 127.0.0.1 that records each request (method, path, headers) and lets
    ``answer`` reply (the request's body is ``h.body``); its URL and the record."""
    seen: list[tuple[str, str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            seen.append((self.command, self.path, dict(self.headers)))
            length = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(length) if length else b""  # the upload
            try:
                answer(self)
            except OSError:
                pass  # the add-on hung up (a deadline, a refusal): its right

        do_GET = do_POST = do_DELETE = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _send(h: BaseHTTPRequestHandler, code: int, body: bytes, length: bool = True, **headers: str) -> None:
    h.send_response(code)
    h.send_header("Content-Type", "application/json")
    if length:
        h.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


def _vp3d(status: Any = STATUS_DONE, motion: bytes = MOTION, **routes: Answer) -> Answer:
    """A vp3d-like service: the upload makes job 1; its status is ``status`` (an object as JSON,
    bytes as they are, or an answer of its own); ``routes`` ("upload", "status", "files",
    "backends") replace an answer."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        if h.command == "POST":
            (routes.get("upload") or (lambda h: _send(h, 200, b'{"id": "1"}')))(h)
        elif h.command == "DELETE":
            _send(h, 200, b'{"id": "1", "state": "cancelled"}')
        elif "/files/" in path:
            (routes.get("files") or (lambda h: _send(h, 200, motion, Content_Type="application/octet-stream")))(h)
        elif path == "/api/backends":
            (routes.get("backends") or (lambda h: _send(h, 200, b'{"detectors": [], "checkpoints": []}')))(h)
        elif "status" in routes:
            routes["status"](h)
        elif callable(status):
            status(h)
        else:
            _send(h, 200, status if isinstance(status, bytes) else json.dumps(status).encode())

    return answer


def _redirect(location: str, code: int = 302) -> Answer:
    def answer(h: BaseHTTPRequestHandler) -> None:
        _send(h, code, b"", Location=location)

    return answer


def _drip(head: bytes, body: bytes, every: float = 0.3) -> Answer:
    """``head`` at once, then ``body`` a byte at a time, ``every`` seconds apart."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(head)
        for i in range(len(body)):
            h.wfile.write(body[i:i + 1])
            h.wfile.flush()
            time.sleep(every)

    return answer


@contextmanager
def _tcp_drip(data: bytes, every: float = 0.3) -> Iterator[int]:
    """A TCP server that, to whoever connects, sends ``data`` a byte at a time (a TLS handshake
    or a status line that never ends); its port."""
    stop = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            for i in range(len(data)):
                if stop.wait(every):
                    return
                try:
                    self.request.sendall(data[i:i + 1])
                except OSError:
                    return

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not really a video: the fake services never look")
    return path


def _add_on_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vp3d") and t.is_alive()]


def _run(url: str, video: Path, token: str = "", wait: float = 8.0, person: str = "0", **limits: float) -> Any:
    """A remote job to its end (its status), checking that it left no thread running and, when it
    failed, that its message is one line a user can read."""
    from vp3d_blender.engine import RemoteJob, RemoteLimits, engine_options

    job = RemoteJob(url, token, video, engine_options(person=person), limits=RemoteLimits(**limits))
    try:
        status = job.wait(timeout=wait)
        job._thread.join(timeout=3)
        assert not job._thread.is_alive(), "the job's thread is still running"
        time.sleep(0.05)
        assert _add_on_threads() == []
        if status.state == "failed":
            assert "\n" not in status.message and len(status.message) < 600, status.message
            assert list(job.folder.iterdir()) == []  # no part of a download left behind
    finally:
        job.close()
    return status


# --- 9: redirects ---------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["upload", "status", "files"])
def test_a_redirect_to_another_origin_never_gets_the_token(bpy: ModuleType, video: Path, where: str) -> None:
    """The second server is a perfectly good vp3d service: today the job would even succeed there,
    having handed it the token."""
    with _service(_vp3d()) as (other, other_seen):
        code = 303 if where == "upload" else 302
        with _service(_vp3d(**{where: _redirect(f"{other}/api/jobs/1{'/files/clip.motion.npz' * (where == 'files')}",
                                                code)})) as (url, seen):
            status = _run(url, video, token="s3cret")
    assert not [h for _, _, h in other_seen if "s3cret" in json.dumps(h)], other_seen
    assert other_seen == []  # nothing at all goes to the other origin
    assert status.state == "failed"
    assert re.search(rf"redirected .* to {re.escape(other)}/api/jobs/1.*does not follow", status.message), \
        status.message
    assert "Service URL" in status.message
    assert all(h.get("Authorization") == "Bearer s3cret" for _, _, h in seen)  # the configured origin has it


def test_a_redirect_within_the_service_is_followed_with_the_token(bpy: ModuleType, video: Path) -> None:
    """vp3d behind a proxy that moves a path is still the same service: same scheme, host, port."""

    def status(h: BaseHTTPRequestHandler) -> None:
        if h.path.endswith("/moved"):
            _send(h, 200, json.dumps(STATUS_DONE).encode())
        else:
            _send(h, 307, b"", Location="/api/jobs/1/moved")

    with _service(_vp3d(status)) as (url, seen):
        result = _run(url, video, token="s3cret")
    assert result.state == "done", result.message
    moved = [h for m, p, h in seen if p.endswith("/moved")]
    assert moved and all(h.get("Authorization") == "Bearer s3cret" for h in moved)


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:{port}/clip.motion.npz", "file:///etc/passwd",
                                    "https://127.0.0.1:{port}/api/jobs/1"])
def test_a_redirect_to_another_scheme_is_refused(bpy: ModuleType, video: Path, target: str) -> None:
    """The same host and port under another scheme is another origin too."""
    to: dict[str, str] = {}
    with _service(_vp3d(status=lambda h: _redirect(to["location"])(h))) as (url, _):
        to["location"] = location = target.format(port=url.rsplit(":", 1)[1])
        status = _run(url, video, token="s3cret")
    assert status.state == "failed"
    assert re.search(rf"redirected the job's status to {re.escape(location)}.*does not follow", status.message), \
        status.message


# --- 10: replies checked before use -----------------------------------------------------------------

@pytest.mark.parametrize(("reply", "said"), [
    (b"[]", "a JSON array"),
    (b'"running"', "a JSON string"),
    (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),  # 60 KB: under the bound, far over Python's stack
    (b"[" * 100_000 + b"]" * 100_000, "more than 65,536 bytes"),  # the bound comes first
    (b"<html>502 Bad Gateway</html>", "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b'{"state": "exploded"}', "state 'exploded'"),
    (b'{"state": "running", "progress": 7}', "progress 7"),
    (b'{"state": "running", "progress": "half"}', "progress 'half'"),
    (b'{"state": "done", "files": "clip.motion.npz"}', "files"),
    (b'{"state": "done", "files": ["../../clip.motion.npz"]}', "files"),
    (b'{"state": "done", "files": ["clip.bvh"]}', "without a Motion file"),
    (b'{"state": "failed", "error": {"why": "no"}}', "error {'why'"),
])
def test_a_status_reply_that_is_not_a_job_status_fails_the_job(bpy: ModuleType, video: Path, reply: bytes,
                                                                said: str) -> None:
    with _service(_vp3d(reply)) as (url, _):
        started = time.monotonic()
        status = _run(url, video)
    assert status.state == "failed" and said in status.message, status.message
    assert url in status.message and time.monotonic() - started < 5


@pytest.mark.parametrize("reply", [b"[]", b'{"id": ["1"]}', b'{"id": "../1"}', b"[" * 100_000])
def test_an_upload_answer_without_a_job_id_fails_the_job(bpy: ModuleType, video: Path, reply: bytes) -> None:
    with _service(_vp3d(upload=lambda h: _send(h, 200, reply))) as (url, _):
        status = _run(url, video)
    assert status.state == "failed" and "upload" in status.message and url in status.message, status.message


def test_an_error_reply_is_read_within_bounds(bpy: ModuleType, video: Path) -> None:
    """A 500 whose body is 10 MB of nesting: one line, the status code, no stack."""
    body = b"[" * 10_000_000

    with _service(_vp3d(lambda h: _send(h, 500, body))) as (url, _):
        status = _run(url, video, reply_bytes=64 << 10)
    assert status.state == "failed" and "answered 500" in status.message, status.message


@pytest.mark.parametrize("where", ["status body", "status line", "files body"])
def test_a_reply_that_drips_hits_the_deadline(bpy: ModuleType, video: Path, where: str) -> None:
    """A byte every 0.3 s keeps a socket timeout from ever firing; the request's deadline does."""
    status_json = json.dumps({**STATUS_DONE, "stage": "x" * 200}).encode()
    head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
    routes = {
        "status body": {"status": _drip(head, status_json)},
        "status line": {"status": _drip(b"", head + status_json)},
        "files body": {"files": _drip(b"HTTP/1.0 200 OK\r\n\r\n", MOTION * 10)},
    }[where]
    with _service(_vp3d(**routes)) as (url, _):
        started = time.monotonic()
        status = _run(url, video, reply_s=1.5, transfer_s=1.5, idle_s=10)
    took = time.monotonic() - started
    assert status.state == "failed" and "took longer than 1.5 s" in status.message, status.message
    assert took < 6, took  # the whole reply would take over 25 s


def test_a_tls_handshake_that_drips_hits_the_deadline(bpy: ModuleType, video: Path) -> None:
    with _tcp_drip(b"\x16\x03\x03" + b"\x00" * 200) as port:
        started = time.monotonic()
        status = _run(f"https://127.0.0.1:{port}", video, reply_s=1.5, transfer_s=1.5, idle_s=10)
    assert status.state == "failed" and "took longer than 1.5 s" in status.message, status.message
    assert time.monotonic() - started < 6  # the whole handshake would take 60 s


@pytest.mark.parametrize("length", [True, False])
def test_a_status_reply_over_the_size_bound_is_refused(bpy: ModuleType, video: Path, length: bool) -> None:
    """Read up to the bound and no further, with or without a Content-Length."""
    body = json.dumps({"id": "1", "state": "running", "progress": 0.5, "stage": "detect"}).encode()
    body += b" " * (1001 - len(body))
    with _service(_vp3d(lambda h: _send(h, 200, body, length=length))) as (url, _):
        status = _run(url, video, reply_bytes=1000)
    assert status.state == "failed" and "more than 1,000 bytes" in status.message, status.message


@pytest.mark.parametrize("length", [True, False])
def test_a_motion_file_over_the_size_bound_is_refused_and_nothing_is_left(bpy: ModuleType, video: Path,
                                                                            length: bool) -> None:
    big = b"x" * 5001
    files = lambda h: _send(h, 200, big, length=length)  # noqa: E731
    with _service(_vp3d(files=files)) as (url, _):
        status = _run(url, video, motion_bytes=5000)
    assert status.state == "failed" and "more than 5,000 bytes" in status.message, status.message


def test_a_motion_file_within_the_bound_is_streamed_to_disk(bpy: ModuleType, video: Path) -> None:
    from vp3d_blender.engine import RemoteJob, RemoteLimits, engine_options

    data = bytes(range(256)) * 40
    with _service(_vp3d(motion=data)) as (url, _):
        job = RemoteJob(url, "", video, engine_options(), limits=RemoteLimits(motion_bytes=len(data)))
        try:
            status = job.wait(timeout=8)
            assert status.state == "done" and status.motion is not None, status.message
            assert status.motion.read_bytes() == data and sorted(p.name for p in job.folder.iterdir()) == [
                status.motion.name]
        finally:
            job.close()


def test_a_video_that_is_gone_fails_the_job(bpy: ModuleType, tmp_path: Path) -> None:
    with _service(_vp3d()) as (url, _):
        status = _run(url, tmp_path / "gone.mp4")
    assert status.state == "failed" and "gone.mp4" in status.message, status.message


def test_an_error_in_the_add_on_itself_still_ends_the_job(bpy: ModuleType, video: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong in the job's thread, background mode's ``job.wait()`` returns."""
    import vp3d_blender.vendor.options as options

    def broken(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(options, "to_form_fields", broken)
    with _service(_vp3d()) as (url, _):
        status = _run(url, video)
    assert status.state == "failed", status.message
    assert "internal error in the add-on" in status.message and "boom" in status.message
    assert "please report" in status.message


def test_a_local_engine_that_writes_bytes_not_text_still_ends_the_job(bpy: ModuleType, video: Path,
                                                                       tmp_path: Path) -> None:
    from vp3d_blender.engine import LocalJob, engine_options

    fake = tmp_path / "vp3d-convert"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.stderr.buffer.write(b'vp3d-convert: error: bad \\xff\\xfe"
                    f" bytes\\n')\nsys.exit(2)\n")
    fake.chmod(0o755)
    job = LocalJob(str(fake), video, engine_options())
    try:
        status = job.wait(timeout=8)
    finally:
        job.close()
    assert status.state == "failed" and "bad" in status.message and "bytes" in status.message, status


@pytest.mark.parametrize("reply", [b'"string"', b"[]", b"[" * 100_000, b'{"detectors": "mediapipe"}',
                                   b'{"detectors": [{"name": 3}]}'])
def test_hostile_menus_from_the_service_are_refused_with_a_report(bpy: ModuleType, reply: bytes) -> None:
    settings = bpy.context.scene.vp3d
    prefs = bpy.context.preferences.addons["vp3d_blender"].preferences
    with _service(_vp3d(backends=lambda h: _send(h, 200, reply))) as (url, _):
        settings.engine, prefs.server_url = "REMOTE", url
        try:
            with pytest.raises(RuntimeError, match="menus") as err:
                bpy.ops.vp3d.refresh_backends()
        finally:
            settings.engine = "LOCAL"
    assert "Traceback" not in str(err.value) and url in str(err.value)


# --- 10: Motion files too big for Blender -----------------------------------------------------------

def _hostile_motion(path: Path, frames: int, joints: int) -> Path:
    """A Motion file of a few hundred kilobytes (it compresses well) that holds ``frames`` x
    ``joints``: a chain of joints, every rotation the identity (float16: the smallest floats)."""
    meta = {"format_name": "vp3d-motion", "format_version": 1, "fps": 30.0, "preset": "custom",
            "joint_names": [f"j{k}" for k in range(joints)], "end_sites": {}, "options": {}}
    parents = np.arange(-1, joints - 1, dtype="<i4").tobytes()
    arrays = {"parents": ((joints,), "<i4", parents, 1), "rest_offsets": ((joints, 3), "<f2", bytes(6), joints),
              "rotations": ((frames, joints, 4), "<f2", np.array([1, 0, 0, 0], "<f2").tobytes(), frames * joints),
              "root_translation": ((frames, 3), "<f2", bytes(6), frames)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        meta_npy = BytesIO()
        np.save(meta_npy, np.array(json.dumps(meta)))
        zf.writestr("meta.npy", meta_npy.getvalue())
        for name, (shape, dtype, pattern, count) in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
                block = 1 << 20
                for start in range(0, count, block):
                    f.write(pattern * min(block, count - start))
    return path


@pytest.mark.parametrize(("frames", "joints", "said"), [(400_000, 22, "400,000 frames"),
                                                         (10, 20_000, "20,000 joints"),
                                                         (100_000, 60, "6,000,000 bone keys")])
def test_a_motion_file_too_big_for_blender_is_refused_at_once(bpy: ModuleType, tmp_path: Path, frames: int,
                                                              joints: int, said: str) -> None:
    path = _hostile_motion(tmp_path / "huge.motion.npz", frames, joints)
    assert path.stat().st_size < 400_000
    objects = len(bpy.data.objects)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=said) as err:
        bpy.ops.vp3d.import_motion(filepath=str(path))
    assert time.monotonic() - started < 10  # baking 6,000,000 keys takes Blender half a minute and 5 GB
    assert str(err.value).strip().count("\n") == 0, str(err.value)  # one report
    assert len(bpy.data.objects) == objects


def test_a_motion_file_too_big_for_blender_from_the_service_is_refused(bpy: ModuleType, video: Path,
                                                                       tmp_path: Path) -> None:
    motion = _hostile_motion(tmp_path / "huge.motion.npz", 400_000, 22).read_bytes()
    prefs = bpy.context.preferences.addons["vp3d_blender"].preferences
    with _service(_vp3d(motion=motion)) as (url, _):
        prefs.server_url, prefs.token = url, ""
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="400,000 frames") as err:
            bpy.ops.vp3d.import_video(filepath=str(video), engine="REMOTE")
    assert time.monotonic() - started < 5
    assert str(err.value).strip().count("\n") == 0, str(err.value)


# --- everyone in the video (person all): a Motion file per person --------------------------------------

def _files_by_name(files: dict[str, bytes]) -> Answer:
    def answer(h: BaseHTTPRequestHandler) -> None:
        name = h.path.split("?")[0].rsplit("/", 1)[1]
        if name in files:
            _send(h, 200, files[name], Content_Type="application/octet-stream")
        else:
            _send(h, 404, b'{"detail": "no such file"}')

    return answer


def _everyone(files: dict[str, bytes], listed: list[str] | None = None,
              uploads: list[bytes] | None = None) -> Answer:
    """A service whose job for everyone made ``files`` (its status lists ``listed``, else them)."""

    def upload(h: BaseHTTPRequestHandler) -> None:
        (uploads if uploads is not None else []).append(getattr(h, "body", b""))
        _send(h, 200, b'{"id": "1"}')

    return _vp3d({**STATUS_DONE, "files": listed if listed is not None else list(files)}, upload=upload,
                 files=_files_by_name(files))


def test_everyone_each_persons_motion_file_is_downloaded_in_person_order(bpy: ModuleType, video: Path) -> None:
    """The form says person=all; every NAME.p<N>.motion.npz comes down (numbers may skip), by N."""
    from vp3d_blender.engine import RemoteJob, engine_options

    files = {"clip.glb": b"glb", "clip.p2.motion.npz": b"person 2", "clip.p0.bvh": b"bvh",
             "clip.p0.motion.npz": b"person 0"}
    uploads: list[bytes] = []
    with _service(_everyone(files, uploads=uploads)) as (url, seen):
        job = RemoteJob(url, "", video, engine_options(person="all"))
        try:
            status = job.wait(timeout=8)
            assert status.state == "done", status.message
            assert [p.name for p in status.motions] == ["result.p0.motion.npz", "result.p2.motion.npz"]
            assert [p.read_bytes() for p in status.motions] == [b"person 0", b"person 2"]
            assert sorted(p.name for p in job.folder.iterdir()) == [p.name for p in status.motions]
        finally:
            job.close()
    assert b'name="person"\r\n\r\nall\r\n' in uploads[0] and b'name="min_presence"\r\n\r\n0.3\r\n' in uploads[0]
    fetched = [p for m, p, _ in seen if "/files/" in p]
    assert fetched == ["/api/jobs/1/files/clip.p0.motion.npz", "/api/jobs/1/files/clip.p2.motion.npz"]


@pytest.mark.parametrize(("listed", "said"), [
    ([f"clip.p{n}.motion.npz" for n in range(11)], "at most 10"),
    (["a.p0.motion.npz", "b.p0.motion.npz"], "one NAME.p<N>.motion.npz per person"),
    (["clip.bvh", "clip.glb"], "without a Motion file"),
])
def test_everyone_motion_files_the_add_on_does_not_understand_fail_the_job(bpy: ModuleType, video: Path,
                                                                           listed: list[str], said: str) -> None:
    with _service(_everyone(dict.fromkeys(listed, MOTION))) as (url, seen):
        status = _run(url, video, person="all")
    assert status.state == "failed" and said in status.message and url in status.message, status.message
    assert not [p for _, p, _ in seen if "/files/" in p]  # nothing downloaded


def test_everyone_a_download_that_fails_leaves_no_one(bpy: ModuleType, video: Path) -> None:
    """All of them or none: person 0's file is removed when person 1's cannot be had."""
    listed = ["clip.p0.motion.npz", "clip.p1.motion.npz"]
    with _service(_everyone({"clip.p0.motion.npz": MOTION}, listed=listed)) as (url, _):
        status = _run(url, video, person="all")  # no file left in the job's folder
    assert status.state == "failed" and "answered 404" in status.message, status.message


@pytest.mark.shared_data
def test_everyone_from_the_service_becomes_an_armature_each(bpy: ModuleType, video: Path,
                                                            people_motions: list[Path]) -> None:
    """The real engine's two people as a service sends them (p0 and p2: a number skipped): two
    armatures named for the video and each person's number, each at its person's place."""
    from converters.motion_file import load_motion_file

    files = {"clip.p0.motion.npz": people_motions[0].read_bytes(), "clip.p2.motion.npz": people_motions[1].read_bytes()}
    prefs = bpy.context.preferences.addons["vp3d_blender"].preferences
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    with _service(_everyone(files)) as (url, _):
        before, prefs.server_url = prefs.server_url, url
        try:
            assert bpy.ops.vp3d.import_video(filepath=str(video), engine="REMOTE", person="all") == {"FINISHED"}
        finally:
            prefs.server_url = before
    assert sorted(o.name for o in bpy.data.objects) == ["clip camera", "clip.p0", "clip.p2"]
    to_blender = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    bpy.context.scene.frame_set(1)
    for name, path in (("clip.p0", people_motions[0]), ("clip.p2", people_motions[1])):
        obj = bpy.data.objects[name]
        hips = np.array(obj.matrix_world @ obj.pose.bones["mixamorig:Hips"].head)
        root = load_motion_file(path).motion.root_translation[0] @ to_blender.T
        assert np.abs(hips - root).max() < 1e-3, name
