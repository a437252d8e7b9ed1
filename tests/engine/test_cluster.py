"""vp3d-convert --scheduler: a real Dask scheduler and two worker processes on 127.0.0.1, real clips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

pytestmark = [pytest.mark.cluster, pytest.mark.shared_data, pytest.mark.slow]

BIN = Path(sys.executable).parent
CLIPS = ("child_dance_480p.mp4", "dance_ball_480p.mp4", "taiji_green_336p.mp4", "taiji_indoor_720p.mp4")
END = "4"  # seconds of each clip: enough for a worker to be busy when it is killed


@dataclass
class Cluster:
    address: str
    workers: dict[str, subprocess.Popen]
    logs: Path

    def worker_call(self, function: str) -> dict[str, object]:
        """Run ``vp3d_engine.cluster.FUNCTION`` on every worker (from a separate client process)."""
        code = ("import json, sys; from distributed import Client; import vp3d_engine.cluster as c; "
                f"cl = Client({self.address!r}, timeout=20); print(json.dumps(cl.run(getattr(c, {function!r})))); "
                "cl.close()")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def busy_worker(self, timeout: float = 60.0) -> str:
        """The name of a worker running a clip, as soon as one is."""
        code = ("import json, time; from distributed import Client; "
                f"cl = Client({self.address!r}, timeout=20); info = cl.scheduler_info()['workers']\n"
                f"end = time.time() + {timeout}\n"
                "while time.time() < end:\n"
                "    busy = [info[w]['name'] for w, ks in cl.processing().items() if ks and w in info]\n"
                "    if busy: print(busy[0]); break\n"
                "    time.sleep(0.05)\n"
                "cl.close()")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout + 30)
        return out.stdout.strip()


def _wait_for(path: Path, what: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.stat().st_size:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in {timeout:.0f} s")


@contextmanager
def start_cluster(tmp_path: Path, names: tuple[str, ...] = ("w1", "w2"), *, scheduler_args: tuple[str, ...] = (),
                  worker_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (one thread each, no nanny:
    SIGKILL takes the worker itself), each in its own process group; all stopped afterwards.
    ``scheduler_args``/``worker_args``: extra options (``--protocol tls``, ``--preload FILE``)."""
    env = {**os.environ, **(env or {})}
    logs = tmp_path / "logs"
    logs.mkdir()
    info = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []

    def start(args: list[str], log: str) -> subprocess.Popen:
        with open(logs / log, "wb") as f:
            p = subprocess.Popen([str(BIN / "dask"), *args], stdout=f, stderr=subprocess.STDOUT, env=env,
                                 cwd=tmp_path, start_new_session=True)
        procs.append(p)
        return p

    try:
        sched = start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
                       "--scheduler-file", str(info), *scheduler_args], "scheduler.log")
        _wait_for(info, "dask scheduler", sched)
        address = json.loads(info.read_text())["address"]
        workers = {name: start(["worker", address, "--nthreads", "1", "--no-nanny", "--name", name,
                                "--dashboard-address", ":0", "--host", "127.0.0.1", *worker_args], f"{name}.log")
                   for name in names}
        c = Cluster(address, workers, logs)
        end = time.time() + 90
        while time.time() < end:  # every worker registered
            text = "".join((logs / f"{n}.log").read_text(errors="replace") for n in workers)
            if text.count("Registered to:") == len(workers):
                break
            if any(p.poll() is not None for p in workers.values()):
                raise RuntimeError("a worker exited:\n" + text[-3000:])
            time.sleep(0.2)
        else:
            raise RuntimeError("the workers did not register:\n" + text[-3000:])
        yield c
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        end = time.time() + 5  # a worker that has converted clips may hang closing its threads: no need to wait
        for p in procs:
            try:
                p.wait(timeout=max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A scheduler and two workers, w1 and w2 (see :func:`start_cluster`)."""
    with start_cluster(tmp_path) as c:
        yield c


def _convert(args: list[str], **kw: object) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "vp3d-convert"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def local_joints(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The four clips converted by a plain local run (the reference)."""
    out = tmp_path_factory.mktemp("local")
    clips = [str(shared_data / "videos" / c) for c in CLIPS]
    run = subprocess.run([str(BIN / "vp3d-convert"), *clips, "--out", str(out), "--end", END, "--quiet",
                          "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return {c: np.load(out / f"{Path(c).stem}.npz")["joints_3d"] for c in CLIPS}


def _check_outputs(out: Path, local: dict[str, np.ndarray]) -> None:
    for clip, joints in local.items():
        with np.load(out / f"{Path(clip).stem}.npz") as npz:
            assert npz["joints_3d"].shape == joints.shape
            assert np.abs(npz["joints_3d"] - joints).max() < 1e-3  # within 1 mm
        bvh = (out / f"{Path(clip).stem}.bvh").read_text()
        assert bvh.startswith("HIERARCHY") and "MOTION" in bvh
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_batch_on_two_workers_matches_a_local_run(cluster: Cluster, shared_data: Path, tmp_path: Path,
                                                  local_joints: dict[str, np.ndarray]) -> None:
    broken = tmp_path / "inputs" / "broken.mp4"
    broken.parent.mkdir()
    broken.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    clips = [str(shared_data / "videos" / c) for c in CLIPS]
    proc = _convert([*clips, str(broken), "--out", str(out), "--end", END, "--npz", "--bvh",
                     "--scheduler", cluster.address])
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr  # one clip failed: the others converted all the same
    assert "4 converted, 1 failed" in stdout
    failed = [line for line in stderr.splitlines() if "error:" in line]
    assert len(failed) == 1 and str(broken) in failed[0] and "vp3d-cluster-" not in failed[0]
    for clip in clips:
        assert any(line.startswith(f"{clip}: ") and "frames" in line for line in stdout.splitlines())
    _check_outputs(out, local_joints)
    assert not (out / "broken.npz").exists()
    # Each worker loaded its lifter and its detector once, however many clips it converted.
    stats = cluster.worker_call("worker_stats")
    assert sum(s["clips"] for s in stats.values()) == 5  # type: ignore[index]
    for s in stats.values():
        assert s["lifters_loaded"] <= 1 and s["detectors_created"] <= 1, stats  # type: ignore[index]


def test_a_worker_killed_mid_batch_loses_nothing(cluster: Cluster, shared_data: Path, tmp_path: Path,
                                                 local_joints: dict[str, np.ndarray]) -> None:
    out = tmp_path / "out"
    clips = [str(shared_data / "videos" / c) for c in CLIPS]
    proc = _convert([*clips, "--out", str(out), "--end", END, "--npz", "--bvh", "--scheduler", cluster.address])
    victim = cluster.busy_worker()
    assert victim in cluster.workers, victim
    cluster.workers[victim].send_signal(signal.SIGKILL)
    cluster.workers[victim].wait(timeout=10)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "4 converted, 0 failed" in stdout
    lines = [line for line in stdout.splitlines() if "frames" in line]
    assert sorted(line.split(":")[0] for line in lines) == sorted(clips)  # each written once
    _check_outputs(out, local_joints)


def test_shared_fs_workers_write_in_place(cluster: Cluster, shared_data: Path, tmp_path: Path,
                                          local_joints: dict[str, np.ndarray]) -> None:
    out = tmp_path / "out"
    clip = CLIPS[2]
    proc = _convert([str(shared_data / "videos" / clip), "--out", str(out), "--end", END, "--npz", "--bvh",
                     "--scheduler", cluster.address, "--shared-fs", "--quiet"])
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"-> {out / Path(clip).stem}.npz" in stdout
    _check_outputs(out, {clip: local_joints[clip]})


def test_unreachable_scheduler_is_one_clear_line(shared_data: Path, tmp_path: Path) -> None:
    proc = _convert([str(shared_data / "videos" / CLIPS[2]), "--out", str(tmp_path), "--scheduler",
                     "tcp://127.0.0.1:9", "--quiet"])
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in stderr and "dask scheduler" in stderr
    assert "Traceback" not in stderr
    assert not list(tmp_path.iterdir())


def test_a_wrong_scheduler_address_is_one_line(shared_data: Path, tmp_path: Path) -> None:
    for address in ("foo", "tcp://[::1", "tcp://host:99999", ""):
        proc = _convert([str(shared_data / "videos" / CLIPS[2]), "--out", str(tmp_path), "--scheduler", address])
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "is not a Dask scheduler address" in stderr, stderr
        assert "Traceback" not in stderr
    assert not list(tmp_path.iterdir())


def test_shared_fs_needs_a_scheduler(shared_data: Path, tmp_path: Path) -> None:
    proc = _convert([str(shared_data / "videos" / CLIPS[2]), "--out", str(tmp_path), "--shared-fs"])
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--shared-fs goes with --scheduler" in stderr
