"""vp3d-convert --scheduler against hostile input, with real Dask processes on 127.0.0.1: a worker
that sends pickles, raises pickled exceptions, returns a string, None or too much; a server that is
not a Dask scheduler; a scheduler behind TLS with the cluster's own certificates."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from test_cluster import BIN, CLIPS, start_cluster  # the scheduler and worker processes

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TLS_ENV = ("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
           "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY")


def payload(marker: Path) -> str:
    """What a hostile pickle runs where it is unpickled: it creates ``marker`` in the vp3d-convert
    process (the client) only, and evaluates to an exception (so a worker's own checks pass)."""
    return (f"(open({str(marker)!r}, 'w').close() if 'vp3d-convert' in ' '.join(__import__('sys').argv) "
            "else None, ValueError('hostile'))[1]")


# A Dask worker preload (``dask worker --preload FILE``): vp3d's task answers each clip by its name.
# Its well-formed results are of a dict type that pickles as a hostile payload: Dask's client
# unpickles the type of each result it is told about.
HOSTILE_PRELOAD = '''
import copyreg
import os
from pathlib import Path

from distributed.protocol.serialize import Serialized, serialize

import vp3d_engine.cluster as cluster

MARKERS = Path(os.environ["VP3D_TEST_MARKERS"])


def evil(marker):
    return (eval, ((PAYLOAD).replace("MARKER", str(MARKERS / marker)),))


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return evil(self.marker)


class EvilError(Exception):
    def __reduce__(self):
        return evil("exception")


class EvilType(type):
    pass


copyreg.pickle(EvilType, lambda cls: evil("type"))


class EvilDict(dict, metaclass=EvilType):
    pass


def result(job, outputs):
    targets = ", ".join(job.targets)
    return EvilDict(line=f"{job.label}: 0 frames (a well-formed result) -> {targets}", outputs=outputs, error=None,
                    message="", traceback="", worker="hostile")


def hostile_run_remote(job, options):
    if job.name == "good":
        return result(job, {".npz": b"a well-formed result"})
    if job.name == "pickled":  # a pickle, whatever the client asked for
        return Serialized(*serialize(Evil("result"), serializers=["pickle"]))
    if job.name == "object":
        return Evil("object")
    if job.name == "raises":
        raise EvilError("hostile")
    if job.name == "string":
        return "a string"
    if job.name == "none":
        return None
    if job.name == "huge":
        size = sum(len(b) for b in job.files.values())
        return result(job, {".npz": bytes(cluster.max_result_bytes(size) + 1)})
    if job.name == "badname":
        return result(job, {"/../../escaped.npz": b"x"})
    raise AssertionError(job.name)


cluster.run_remote = hostile_run_remote
'''.replace("PAYLOAD", repr(payload(Path("MARKER"))))

BAD = ("pickled", "object", "raises", "string", "none", "huge", "badname")


@dataclass
class Batch:
    returncode: int
    stdout: str
    stderr: str
    out: Path
    inputs: Path
    markers: Path


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    """One batch of eight inputs on a scheduler whose only worker is hostile."""
    tmp = tmp_path_factory.mktemp("hostile")
    preload, markers, inputs = tmp / "hostile_preload.py", tmp / "markers", tmp / "inputs"
    preload.write_text(HOSTILE_PRELOAD)
    markers.mkdir()
    inputs.mkdir()
    for name in ("good", *BAD):
        (inputs / f"{name}.mp4").write_bytes(b"\0" * 100)  # never decoded: the worker does not convert
    env = {"VP3D_TEST_MARKERS": str(markers)}
    with start_cluster(tmp, ("hostile",), worker_args=("--preload", str(preload)), env=env) as c:
        run = subprocess.run([str(BIN / "vp3d-convert"), *sorted(map(str, inputs.iterdir())), "--out", str(tmp / "out"),
                              "--npz", "--quiet", "--scheduler", c.address], capture_output=True, text=True,
                             timeout=180)
        yield Batch(run.returncode, run.stdout, run.stderr, tmp / "out", inputs, markers)


def test_the_hostile_payload_works_where_it_is_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The marker test below means something: this payload does create its file when unpickled."""
    import pickle

    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (eval, (payload(marker),))

    monkeypatch.setattr(sys, "argv", ["vp3d-convert"])
    assert isinstance(pickle.loads(pickle.dumps(Evil())), ValueError)
    assert marker.exists()


def test_nothing_a_hostile_worker_sends_is_unpickled(hostile_batch: Batch) -> None:
    assert not list(hostile_batch.markers.iterdir()), (sorted(p.name for p in hostile_batch.markers.iterdir()),
                                                       hostile_batch.stderr[-3000:])


def test_each_bad_result_is_one_failed_clip(hostile_batch: Batch) -> None:
    b = hostile_batch
    assert b.returncode == 2, b.stderr[-3000:]
    assert "Traceback" not in b.stderr, b.stderr[-5000:]
    assert f"1 converted, {len(BAD)} failed" in b.stdout
    errors = [line for line in b.stderr.splitlines() if "error:" in line]
    for name in BAD:
        mine = [line for line in errors if str(b.inputs / f"{name}.mp4") in line]
        assert len(mine) == 1 and "nothing of it was written" in mine[0], (name, errors)
    assert len(errors) == len(BAD), errors
    assert b.stderr.count("\n") <= len(BAD) + 2, b.stderr  # one line each (and a warning or two at most)


def test_the_good_clip_beside_them_is_written(hostile_batch: Batch) -> None:
    b = hostile_batch
    assert (b.out / "good.npz").read_bytes() == b"a well-formed result"
    assert [line for line in b.stdout.splitlines() if line.startswith(str(b.inputs / "good.mp4"))]
    assert sorted(p.name for p in b.out.iterdir()) == ["good.npz"]  # nothing else, no temporary files


# --- a server that is not a Dask scheduler -------------------------------------------------------


@dataclass
class NotDask:
    address: str
    accepted: list[float]  # time.monotonic() of each connection


@pytest.fixture(params=["silent", "garbage"])
def not_dask(request: pytest.FixtureRequest) -> Iterator[NotDask]:
    """A TCP server on 127.0.0.1 that accepts and then says nothing, or answers like a web server."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepted: list[float] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(time.monotonic())
            if request.param == "garbage":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield NotDask(f"tcp://127.0.0.1:{server.getsockname()[1]}", accepted)
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_a_server_that_is_not_a_dask_scheduler_is_one_quick_line(not_dask: NotDask, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 100)
    run = subprocess.run([str(BIN / "vp3d-convert"), str(clip), "--out", str(tmp_path / "out"), "--quiet",
                          "--scheduler", not_dask.address], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - not_dask.accepted[0]  # from its first connection (start-up time not counted)
    assert run.returncode == 2, run.stderr
    assert f"{not_dask.address} is not a Dask scheduler" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert took < 10, took
    assert not (tmp_path / "out").exists()


# --- TLS ----------------------------------------------------------------------------------------


@dataclass
class TlsCluster:
    address: str
    certs: Path
    other: Path  # certificates from another CA


def _certs(folder: Path, *names: str) -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "make_cluster_certs.sh"), str(folder), *names], check=True,
                   capture_output=True, timeout=60)


def _client_env(certs: Path, name: str = "client") -> dict[str, str]:
    return {**_no_tls_env(), TLS_ENV[0]: str(certs / "ca.pem"), TLS_ENV[1]: str(certs / f"{name}.pem"),
            TLS_ENV[2]: str(certs / f"{name}.key")}


def _no_tls_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DASK_DISTRIBUTED__COMM__")}


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    """A scheduler and one worker that speak TLS only, with certificates from
    scripts/make_cluster_certs.sh (the README's recipe)."""
    tmp = tmp_path_factory.mktemp("tls")
    certs, other = tmp / "certs", tmp / "other"
    _certs(certs)
    _certs(other, "client")

    def tls(name: str) -> tuple[str, ...]:
        return ("--tls-ca-file", str(certs / "ca.pem"), "--tls-cert", str(certs / f"{name}.pem"),
                "--tls-key", str(certs / f"{name}.key"))

    with start_cluster(tmp, ("w1",), scheduler_args=("--protocol", "tls", *tls("scheduler")),
                       worker_args=tls("worker"), env=_no_tls_env()) as c:
        assert c.address.startswith("tls://127.0.0.1:")
        yield TlsCluster(c.address, certs, other)


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    run = subprocess.run([str(BIN / "vp3d-convert"), *args], capture_output=True, text=True, timeout=timeout, env=env)
    return run, time.monotonic() - start


@pytest.mark.shared_data
def test_a_batch_over_tls(tls_cluster: TlsCluster, shared_data: Path, tmp_path: Path) -> None:
    clip = shared_data / "videos" / CLIPS[2]
    run, _ = _run([str(clip), "--out", str(tmp_path), "--end", "2", "--npz", "--bvh", "--quiet",
                   "--scheduler", tls_cluster.address], _client_env(tls_cluster.certs), timeout=300)
    assert run.returncode == 0, run.stderr
    with np.load(tmp_path / f"{clip.stem}.npz") as npz:
        joints = npz["joints_3d"]
    assert joints.ndim == 3 and joints.shape[0] >= 20 and joints.shape[1:] == (17, 3) and np.isfinite(joints).all()
    assert (tmp_path / f"{clip.stem}.bvh").read_text().startswith("HIERARCHY")


def test_tls_without_certificates_is_one_line(tls_cluster: TlsCluster, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 100)
    run, _ = _run([str(clip), "--out", str(tmp_path / "out"), "--scheduler", tls_cluster.address], _no_tls_env())
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert all(name in run.stderr for name in TLS_ENV), run.stderr


def test_a_plain_tcp_client_is_refused(tls_cluster: TlsCluster, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 100)
    plain = tls_cluster.address.replace("tls://", "tcp://")
    run, took = _run([str(clip), "--out", str(tmp_path / "out"), "--scheduler", plain],
                     _client_env(tls_cluster.certs))
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"{plain} is not a Dask scheduler" in run.stderr and "tls://" in run.stderr, run.stderr
    assert took < 30, took  # the scheduler says nothing to a client that does not start TLS: 4 s, plus start-up


def test_certificates_from_another_ca_are_refused(tls_cluster: TlsCluster, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 100)
    run, _ = _run([str(clip), "--out", str(tmp_path / "out"), "--scheduler", tls_cluster.address],
                  _client_env(tls_cluster.other))
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "TLS handshake" in run.stderr and "certificate" in run.stderr, run.stderr


def test_the_scheduler_refuses_a_peer_without_a_certificate(tls_cluster: TlsCluster) -> None:
    """What keeps a hostile worker out: Dask's TLS is mutual, a peer needs a certificate from the CA."""
    host, port = tls_cluster.address.removeprefix("tls://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(tls_cluster.certs / "ca.pem"))
    ctx.check_hostname = False
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
            tls.settimeout(10)
            got = tls.recv(8)  # TLS 1.3: the refusal arrives with the first read
    except (ssl.SSLError, ConnectionError):
        got = b""
    assert got == b"", got  # no Dask handshake for a peer without a certificate
