"""A real ``vp3d serve`` process on loopback for the service tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE = "tests.service.fake_pipeline:make_runner"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data: Path
    process: subprocess.Popen[bytes]
    token: str = ""
    log: Path | None = None  # the server's stderr

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log is not None and self.log.exists() else ""

    def request(self, path: str, method: str = "GET", data: bytes | None = None,
                headers: dict[str, str] | None = None, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=dict(headers or {}))
        token = self.token if token is None else token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = response.read()
                status = response.status
                kind = response.headers.get("content-type", "")
        except urllib.error.HTTPError as exc:
            with exc:
                body, status, kind = exc.read(), exc.code, exc.headers.get("content-type", "")
        return status, json.loads(body) if "json" in kind else body

    def upload(self, path: Path, filename: str | None = None, token: str | None = None,
               **fields: str) -> tuple[int, Any]:
        boundary = "vp3dtestboundary"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename or path.name}"'
                     '\r\nContent-Type: application/octet-stream\r\n\r\n'.encode() + path.read_bytes() + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("/api/jobs", "POST", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                            token=token)

    def wait(self, job_id: str, states: tuple[str, ...] = ("done", "failed", "cancelled"),
             timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job = self.request(f"/api/jobs/{job_id}")
            assert status == 200, job
            if job["state"] in states:
                return dict(job)
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (a crash, a container stopped hard)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_server(data: Path, *args: str, env: dict[str, str] | None = None, token: str = "") -> Server:
    port = free_port()
    command = [sys.executable, "-m", "vp3d_engine.cli", "serve", "--port", str(port), "--data", str(data), *args]
    if token:
        command += ["--token", token]
    log = data.parent / f"serve-{port}.log"
    data.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as err:
        process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=err)
    server = Server(f"http://127.0.0.1:{port}", data, process, token, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if server.request("/api/health")[0] == 200:
                return server
        except (urllib.error.URLError, ConnectionError):
            pass
        if process.poll() is not None:
            raise AssertionError(f"vp3d serve exited with {process.returncode}")
        time.sleep(0.2)
    raise AssertionError("vp3d serve did not answer within 60 s")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers (stopped at the end): ``serve(*args, env=..., token=..., data=...)``."""
    started: list[Server] = []

    def start(*args: str, data: Path | None = None, **kwargs: Any) -> Server:
        server = start_server(data or tmp_path / "data", *args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)
