"""The worker pool and the job store of ``vp3d serve`` when the server stops: killed (its workers
go with it, the restarted server runs the job once), stopped normally (the job waits for the next
start and keeps its attempts), and uploads cut off by a kill (their folders are cleaned)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.service.conftest import FAKE, Server, stop_server
from vp3d_engine.service.store import JobStore


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` now (from /proc: the service's workers and their helpers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped running; only its exit status waits to be read


def _running_in_detect(server: Server, job_id: str) -> None:
    """Wait until the job is in a worker's hands (not only claimed: the worker reports a stage)."""
    deadline = time.monotonic() + 60
    while (job := server.request(f"/api/jobs/{job_id}")[1])["stage"] != "detect":
        assert time.monotonic() < deadline and job["state"] in ("queued", "running"), job
        time.sleep(0.05)


@pytest.fixture
def clip(shared_data: Path) -> Path:
    return shared_data / "videos" / "taiji_green_336p.mp4"


@pytest.mark.shared_data
def test_workers_die_with_a_killed_server_and_the_restarted_one_runs_the_job_once(
        serve: Callable[..., Server], clip: Path) -> None:
    server = serve("--runner", FAKE, env={"VP3D_FAKE_SECONDS": "8"})
    job_id = server.upload(clip)[1]["id"]
    _running_in_detect(server, job_id)
    workers = _descendants(server.process.pid)
    assert workers
    os.kill(server.process.pid, signal.SIGKILL)  # the server only: its workers are not signalled
    server.process.wait(timeout=30)
    deadline = time.monotonic() + 5
    while (left := {pid for pid in workers if _alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"worker processes {sorted(left)} outlived their server"
    again = serve("--runner", FAKE, env={"VP3D_FAKE_SECONDS": "0.5"}, data=server.data)
    job = again.wait(job_id)
    assert job["state"] == "done" and job["files"] == ["taiji_green_336p.json"], job
    folder = again.data / "jobs" / job_id
    assert sorted(p.name for p in folder.iterdir()) == ["out", "upload.mp4"]
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["taiji_green_336p.json"]
    result = json.loads((folder / "out" / "taiji_green_336p.json").read_text())
    assert result["pid"] in _descendants(again.process.pid)  # written by the restarted server's worker


@pytest.mark.shared_data
def test_a_worker_that_outlives_its_server_never_touches_the_restarted_jobs_files(
        serve: Callable[..., Server], clip: Path) -> None:
    server = serve("--runner", FAKE, env={"VP3D_FAKE_SECONDS": "4"})
    job_id = server.upload(clip)[1]["id"]
    _running_in_detect(server, job_id)
    worker = next(pid for pid in _descendants(server.process.pid)
                  if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(worker, signal.SIGSTOP)  # frozen: it cannot notice that its server dies
    try:
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
        again = serve("--runner", FAKE, env={"VP3D_FAKE_SECONDS": "0.5"}, data=server.data)
        assert again.wait(job_id)["state"] == "done"
        out = again.data / "jobs" / job_id / "out" / "taiji_green_336p.json"
        result = out.read_bytes()
        os.kill(worker, signal.SIGCONT)  # the orphan wakes with 3 s of its old run left
        deadline = time.monotonic() + 6
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the orphaned worker went on running"
        assert out.read_bytes() == result and json.loads(result)["pid"] != worker
        assert sorted(p.name for p in out.parent.parent.iterdir()) == ["out", "upload.mp4"]
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


@pytest.mark.shared_data
def test_a_normal_stop_requeues_the_running_job_without_using_an_attempt(
        serve: Callable[..., Server], clip: Path) -> None:
    slow = {"VP3D_FAKE_SECONDS": "20"}
    server = serve("--runner", FAKE, env=slow)
    job_id = server.upload(clip)[1]["id"]
    _running_in_detect(server, job_id)
    stop_server(server)  # SIGTERM to the server and its workers (systemd's way)
    store = JobStore(server.data)
    job = store.get(job_id)
    store.close()
    assert job is not None and job.state == "queued" and job.attempts == 0, job
    # Stopped again, the server only this time (docker stop's way): still no attempt used.
    server = serve("--runner", FAKE, env=slow, data=server.data)
    _running_in_detect(server, job_id)
    def watch() -> None:  # the page, following the job; the stop cuts its stream off
        with contextlib.suppress(OSError, http.client.HTTPException):
            urllib.request.urlopen(server.url + f"/api/jobs/{job_id}/events", timeout=60).read()

    watching = threading.Thread(target=watch, daemon=True)
    watching.start()
    time.sleep(0.5)
    stopped = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)  # 143: uvicorn raises the signal again once it has shut down
    assert time.monotonic() - stopped < 12  # an open event stream does not hold the stop until the job ends
    server = serve("--runner", FAKE, env={"VP3D_FAKE_SECONDS": "0.5"}, data=server.data)
    assert server.wait(job_id)["state"] == "done"  # two stops, two attempts allowed: not failed
    store = JobStore(server.data)
    job = store.get(job_id)
    store.close()
    assert job is not None and job.attempts == 1


def test_an_upload_cut_off_by_a_kill_leaves_nothing_after_the_restart(serve: Callable[..., Server]) -> None:
    server = serve("--runner", FAKE)
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    head = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n")
    with socket.create_connection((host, int(port))) as client:
        client.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: " + host.encode() + b"\r\nContent-Type: multipart/form-data; "
                       b"boundary=b\r\nContent-Length: 50000000\r\n\r\n" + head + b"\0" * 2_000_000)
        deadline = time.monotonic() + 30
        while not any(p.is_file() and p.stat().st_size for p in (server.data / "jobs").glob("*/*")):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
        server.kill()
    assert list((server.data / "jobs").iterdir())  # the partial upload, with no job
    again = serve("--runner", FAKE, data=server.data)
    assert list((again.data / "jobs").iterdir()) == []


def test_upload_folders_without_a_job_are_cleaned(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    hour_ago = time.time() - 3600

    def folder(name: str, age_s: float) -> Path:
        path = store.folder(name)
        path.mkdir()
        (path / "partial-upload").write_bytes(b"\0" * 100)
        for p in (path / "partial-upload", path):
            os.utime(p, (time.time() - age_s, time.time() - age_s))
        return path

    job = store.add(store.new_id(), "clip.mp4", "upload.mp4", {})
    kept = folder(job.id, 7200)  # a job's folder: kept however old
    killed = folder("killed-upload", 7200)  # the server was killed mid-upload two hours ago
    arriving = folder("arriving-upload", 5)  # an upload still coming in
    assert store.clean_orphans(older_than=hour_ago) == ["killed-upload"]
    assert not killed.exists() and arriving.exists() and kept.exists()
    assert store.clean_orphans() == ["arriving-upload"]  # at start nothing is arriving
    assert not arriving.exists() and kept.exists()
    store.close()
