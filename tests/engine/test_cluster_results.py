"""What a Dask worker sends back, read without a cluster: the checks on a result, the error names
read from pickles without unpickling them, and the guard that keeps Dask from unpickling at all."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from converters.errors import ConversionError
from vp3d_engine.cluster import max_result_bytes
from vp3d_engine.cluster_client import RemoteResult, check_result, refuse_unpickling, remote_error_name
from vp3d_engine.jobs import Job

LIMIT = 10_000


def _job(tmp_path: Path) -> Job:
    return Job(tmp_path / "in" / "clip.mp4", tmp_path / "out", "clip", ["npz", "bvh"])


def _good(job: Job, **changes: Any) -> dict[str, Any]:
    good: dict[str, Any] = {"line": f"{job.source}: 60 frames -> {job.targets[0]}", "error": None, "message": "",
                            "outputs": {".npz": b"npz", ".bvh": b"HIERARCHY"}, "traceback": "", "worker": "tcp://w:1"}
    return {**good, **changes}


def _evil(marker: Path) -> object:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (eval, (f"open({str(marker)!r}, 'w').close()",))

    return Evil()


def test_a_well_formed_result_is_read(tmp_path: Path) -> None:
    job = _job(tmp_path)
    res = check_result(_good(job), job, LIMIT)
    assert isinstance(res, RemoteResult) and res.outputs == {".npz": b"npz", ".bvh": b"HIERARCHY"}
    failed = check_result(_good(job, error="input", message="no person\x1b[2J", outputs={}, line=""), job, LIMIT)
    assert failed.error == "input" and failed.message == "no person\\x1b[2J"  # escapes shown, not sent


@pytest.mark.parametrize(("change", "what"), [
    ({"outputs": {".exe": b"x"}}, "a file clip.exe that this run did not ask for"),
    ({"outputs": {"/../../x.npz": b"x"}}, "did not ask for"),
    ({"outputs": {".npz": "text"}}, "of type str"),
    ({"outputs": {1: b"x"}}, "a file '1' of type bytes"),
    ({"outputs": {".npz": bytes(LIMIT)}}, "more than the 10,000 this input allows"),
    ({"outputs": {}}, "no files"),
    ({"error": "evil"}, "an error of kind 'evil'"),
    ({"line": "/etc/passwd: converted"}, "a line about something else"),
    ({"message": b"bytes"}, "message: bytes"),
    ({"extra": 1}, "extra: int"),
    ({"worker": None}, "worker: NoneType"),
])
def test_a_malformed_result_is_refused_with_what_it_was(tmp_path: Path, change: dict[str, Any], what: str) -> None:
    job = _job(tmp_path)
    with pytest.raises(ConversionError, match="not a vp3d result; nothing of it was written") as info:
        check_result(_good(job, **change), job, LIMIT, worker="worker tcp://w:1")
    assert what in str(info.value) and str(job.source) in str(info.value)


@pytest.mark.parametrize(("raw", "what"), [("a string", "a str"), (None, "None"), (1.5, "a float"),
                                           ([1], "a list"), ((), "a tuple")])
def test_anything_but_a_dict_is_refused(tmp_path: Path, raw: object, what: str) -> None:
    job = _job(tmp_path)
    with pytest.raises(ConversionError, match=f"sent back {what}, not a vp3d result"):
        check_result(raw, job, LIMIT)


def test_a_missing_field_is_refused(tmp_path: Path) -> None:
    job = _job(tmp_path)
    raw = _good(job)
    del raw["traceback"]
    with pytest.raises(ConversionError, match="not a vp3d result"):
        check_result(raw, job, LIMIT)


def test_with_shared_fs_a_result_holds_no_files(tmp_path: Path) -> None:
    job = _job(tmp_path)
    assert check_result(_good(job, outputs={}), job, LIMIT, shared=True).outputs == {}
    with pytest.raises(ConversionError, match="did not ask for"):
        check_result(_good(job), job, LIMIT, shared=True)


def test_the_result_bound() -> None:
    assert max_result_bytes(0) == 64 << 20
    assert max_result_bytes(2_000_000) == (64 << 20) + 128_000_000  # a 2 MB clip: ~190 MB, far below 1.5 GB
    assert max_result_bytes(-5) == max_result_bytes(0)


def test_error_names_are_read_without_unpickling(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from distributed.core import error_message
    from distributed.protocol.serialize import Serialized, serialize
    from distributed.scheduler import KilledWorker

    # What the scheduler sends for a clip that killed its workers: the exception pickled as bytes.
    assert remote_error_name(pickle.dumps(KilledWorker("k", "tcp://w:1", 3))) == "distributed.scheduler.KilledWorker"
    # What a worker sends for a raised error: Dask's error message, serialized.
    blob = error_message(ValueError("boom"))["exception"]
    assert remote_error_name(Serialized(*serialize(blob))) == "builtins.ValueError"
    marker = tmp_path / "marker"
    assert remote_error_name(pickle.dumps(_evil(marker))) is None  # names no exception class
    assert not marker.exists()  # named, not run
    assert remote_error_name(b"garbage") is None and remote_error_name(None) is None
    assert remote_error_name(Serialized({"serializer": "pickle", "compression": ("lz4",)}, [b"x"])) is None


def test_dask_unpickles_nothing_inside_refuse_unpickling(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    import distributed.client
    import distributed.protocol.pickle
    from distributed.protocol import ToPickle, dumps, loads

    marker = tmp_path / "marker"
    frames = dumps({"op": "event", "event": ToPickle(_evil(marker))})  # a pickle inside a message
    with refuse_unpickling():
        with refuse_unpickling():  # nests
            assert "not unpickled" in repr(loads(frames)["event"])
        assert "not unpickled" in repr(distributed.protocol.pickle.loads(pickle.dumps(_evil(marker))))
        assert "not unpickled" in repr(distributed.client.loads(pickle.dumps(_evil(marker))))
    assert not marker.exists()
    assert distributed.protocol.pickle.loads(pickle.dumps([1])) == [1]  # Dask as it was, outside
    assert distributed.client.loads is distributed.protocol.pickle.loads


def test_everyones_files_are_taken_and_no_others(tmp_path: Path) -> None:
    """--person all: each person's files (NAME.pN.*, N from 0 to 9) and the one GLB holding
    everyone come back; a file for an eleventh person, or a per-person GLB, was not asked for."""
    job = Job(tmp_path / "in" / "clip.mp4", tmp_path / "out", "clip", ["bvh", "glb"], everyone=True)
    outputs = {".p0.bvh": b"HIERARCHY", ".p3.bvh": b"HIERARCHY", ".glb": b"glTF"}
    assert check_result(_good(job, outputs=outputs), job, LIMIT).outputs == outputs
    for wrong in (".p10.bvh", ".p0.glb", ".bvh"):
        with pytest.raises(ConversionError, match="did not ask for"):
            check_result(_good(job, outputs={wrong: b"x"}), job, LIMIT)
