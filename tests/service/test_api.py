"""The job API of ``vp3d serve`` over real HTTP on loopback, with a fake pipeline (fast) unless
the test says otherwise."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.service.conftest import FAKE, Server

pytestmark = pytest.mark.shared_data


@pytest.fixture
def clip(shared_data: Path) -> Path:
    return shared_data / "videos" / "taiji_green_336p.mp4"


def _leftovers(server: Server) -> list[str]:
    return sorted(p.name for p in (server.data / "jobs").iterdir())


def test_a_job_is_queued_runs_and_its_files_download(serve: Callable[..., Server], clip: Path) -> None:
    server = serve("--runner", FAKE, env={"VP3D_FAKE_SECONDS": "1.5"})
    status, first = server.upload(clip, rig="ue", feet="off")
    assert status == 201 and set(first) == {"id"}
    server.wait(first["id"], ("running",))
    status, second = server.upload(clip, rig="mixamo")
    queued = server.request(f"/api/jobs/{second['id']}")[1]
    assert queued["state"] == "queued" and queued["queue_position"] == 1
    deadline = time.monotonic() + 60
    while (running := server.request(f"/api/jobs/{first['id']}")[1])["stage"] != "detect":
        assert time.monotonic() < deadline and running["state"] == "running", running
        time.sleep(0.05)
    assert 0.0 <= running["progress"] < 1.0 and running["queue_position"] is None
    done = server.wait(first["id"])
    assert done["state"] == "done" and done["files"] == ["taiji_green_336p.json"] and done["error"] is None
    status, body = server.request(f"/api/jobs/{first['id']}/files/taiji_green_336p.json")
    assert status == 200 and body["options"]["rig"] == "ue" and body["options"]["feet"] == "off"
    assert body["upload_bytes"] == clip.stat().st_size
    assert server.request(f"/api/jobs/{first['id']}/files/..%2Fjobs.sqlite")[0] == 404  # only the job's own files
    status, video = server.request(f"/api/jobs/{first['id']}/video")
    assert status == 200 and video == clip.read_bytes()
    assert server.wait(second["id"])["state"] == "done"
    # Server-Sent Events: the job's states as they come, ending with done.
    with urllib.request.urlopen(server.url + f"/api/jobs/{second['id']}/events", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.read().decode().splitlines() if line.startswith("data: ")]
    assert events[-1]["state"] == "done"
    # Delete a finished job: its files go with it.
    assert server.request(f"/api/jobs/{first['id']}", "DELETE")[1]["state"] == "deleted"
    assert server.request(f"/api/jobs/{first['id']}")[0] == 404 and first["id"] not in _leftovers(server)


def test_health_backends_and_openapi(serve: Callable[..., Server]) -> None:
    server = serve("--runner", FAKE)
    assert server.request("/api/health")[1]["ok"] is True
    backends = server.request("/api/backends")[1]
    assert {"mediapipe"} <= {d["name"] for d in backends["detectors"]} and "mixamo" in backends["rigs"]
    assert "default" in {c["name"] for c in backends["checkpoints"]}
    schema = server.request("/openapi.json")[1]
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/backends"} <= set(schema["paths"])


def test_cancel_a_running_job_and_the_next_one_still_runs(serve: Callable[..., Server], clip: Path) -> None:
    server = serve("--runner", FAKE, env={"VP3D_FAKE_SECONDS": "20"})
    first = server.upload(clip)[1]["id"]
    second = server.upload(clip, person="1")[1]["id"]
    server.wait(first, ("running",))
    assert server.request(f"/api/jobs/{first}", "DELETE")[1]["state"] == "cancelled"
    assert server.request(f"/api/jobs/{first}")[1]["state"] == "cancelled"
    assert server.wait(second, ("running",))["state"] == "running"  # a fresh worker took the next job
    assert server.request(f"/api/jobs/{second}", "DELETE")[1]["state"] == "cancelled"


def test_a_failing_job_says_why(serve: Callable[..., Server], clip: Path) -> None:
    server = serve("--runner", FAKE)
    job = server.wait(server.upload(clip, person="9")[1]["id"])
    assert job["state"] == "failed" and "person 9 is missing" in job["error"]


@pytest.mark.parametrize(("case", "expected", "words"), [
    ("not a video", 415, "not a video"), ("empty", 400, "empty"), ("too big", 413, "larger than the limit"),
    ("bad option", 422, "rig must be one of"), ("no file", 400, "no file"), ("wrong token", 401, "token"),
    ("path checkpoint", 422, "checkpoint must be one of the installed checkpoints"), ("path name", 400, "is a path"),
    ("hidden name", 400, "not a plain name"), ("bad share", 422, "mediapipe_3d must be from 0 to 1"),
])
def test_bad_uploads_get_a_readable_4xx_and_leave_nothing(serve: Callable[..., Server], clip: Path, tmp_path: Path,
                                                           case: str, expected: int, words: str) -> None:
    server = serve("--runner", FAKE, "--max-upload-mb", "2", token="secret")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    big = tmp_path / "big.mp4"
    big.write_bytes(clip.read_bytes()[:10] * 250_000)
    if case == "no file":
        body_only_rig = b'--b\r\nContent-Disposition: form-data; name="rig"\r\n\r\nmixamo\r\n--b--\r\n'
        status, body = server.request("/api/jobs", "POST", body_only_rig,
                                      {"Content-Type": "multipart/form-data; boundary=b"})
    else:
        path = {"not a video": text, "empty": empty, "too big": big}.get(case, clip)
        fields = {"bad option": {"rig": "robot"}, "path checkpoint": {"checkpoint": "../../etc"},
                  "bad share": {"mediapipe_3d": "1.5"}}.get(case, {})
        filename = {"path name": "../../../tmp/evil.mp4", "hidden name": ".bashrc"}.get(case)
        status, body = server.upload(path, filename=filename, token="wrong" if case == "wrong token" else None,
                                     **fields)
    assert status == expected and words in body["detail"], body
    assert _leftovers(server) == []


def test_a_file_name_is_only_a_label(serve: Callable[..., Server], clip: Path) -> None:
    """Path-like names are refused (see the bad uploads); others name the results, made safe."""
    server = serve("--runner", FAKE)
    job = server.wait(server.upload(clip, filename="my clip (final).mp4")[1]["id"])
    assert job["state"] == "done" and job["name"] == "my clip (final).mp4" and job["files"] == ["my_clip__final.json"]
    folder = server.data / "jobs" / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["out", "upload.mp4"]


def test_a_full_queue_answers_503_with_retry_after(serve: Callable[..., Server], clip: Path) -> None:
    server = serve("--runner", FAKE, "--max-queue", "1", env={"VP3D_FAKE_SECONDS": "20"})
    server.wait(server.upload(clip)[1]["id"], ("running",))
    assert server.upload(clip)[0] == 201  # queued
    request = urllib.request.Request(server.url + "/api/jobs", method="POST", data=b"x",
                                     headers={"Content-Type": "multipart/form-data; boundary=b"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    with refused.value as answer:
        assert answer.code == 503 and answer.headers["Retry-After"] == "60"


def test_a_server_killed_mid_job_finishes_every_job_after_a_restart(serve: Callable[..., Server], clip: Path) -> None:
    server = serve("--runner", FAKE, env={"VP3D_FAKE_SECONDS": "3"})
    jobs = [server.upload(clip, rig=rig)[1]["id"] for rig in ("mixamo", "ue", "h36m")]
    server.wait(jobs[0], ("running",))
    time.sleep(1.0)
    server.kill()  # SIGKILL: the server and its worker, mid-job, two jobs still queued
    again = serve("--runner", FAKE, data=server.data, env={"VP3D_FAKE_SECONDS": "0.5"})
    for job_id, rig in zip(jobs, ("mixamo", "ue", "h36m"), strict=True):
        job = again.wait(job_id)
        assert job["state"] == "done", job
        body = again.request(f"/api/jobs/{job_id}/files/{job['files'][0]}")[1]
        assert body["options"]["rig"] == rig  # complete, and its own
    leftovers = [p for p in again.data.rglob("*") if "vp3d-tmp" in p.name or p.suffix == ".partial"]
    assert leftovers == []


def test_binding_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "vp3d_engine.cli", "serve", "--host", "0.0.0.0", "--data",
                           str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--token" in done.stderr
    (tmp_path / "afile").write_text("x")
    done = subprocess.run([sys.executable, "-m", "vp3d_engine.cli", "serve", "--data", str(tmp_path / "afile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("vp3d serve: error: --data")
    assert "Traceback" not in done.stderr


def test_finished_jobs_expire_with_their_files(tmp_path: Path, clip: Path) -> None:
    from vp3d_engine.service.store import JobStore

    store = JobStore(tmp_path)
    try:
        old, new = store.new_id(), store.new_id()
        for job_id in (old, new):
            store.folder(job_id).mkdir(parents=True)
            (store.folder(job_id) / "upload.mp4").write_bytes(b"x")
            store.add(job_id, "clip.mp4", "upload.mp4", {})
        store.update(old, state="done", finished=time.time() - 3600)
        store.update(new, state="done", finished=time.time())
        assert store.expired(time.time() - 1800) == [old]
        store.delete(old)
        assert store.get(old) is None and not store.folder(old).exists() and store.get(new) is not None
    finally:
        store.close()


def test_a_wrong_vp3d_port_is_one_line(tmp_path: Path) -> None:
    """The container sets the port through VP3D_PORT: a wrong one is refused before anything starts."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "vp3d_engine.cli", "serve", "--data", str(tmp_path / "d")],
                          env={**os.environ, "VP3D_PORT": "80800"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "VP3D_PORT='80800' is not a port number" in done.stderr
    assert not (tmp_path / "d").exists()
