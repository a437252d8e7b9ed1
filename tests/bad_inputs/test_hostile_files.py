"""Hostile and extreme input files (issue 27, findings 12 to 14): each case is built afresh and
given to the real command (one line, exit 2, no traceback, nothing written) and, where a library
function reads it for another door (the Blender add-on reads Motion files with
``load_motion_file``), to that function (one :class:`InputFileError`, no numpy warning: the suite
turns warnings into errors)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_tools import MEMORY_LIMIT, assert_refused, error_lines, run, temporaries
from numpy.lib import format as npy_format

from converters.errors import InputFileError
from converters.joints import H36M17
from converters.motion_file import load_motion_file, save_motion_file
from converters.solve import solve
from converters.types import Keypoints2D, Pose3D

_STANDING = {"pelvis": (0, 1, 0), "right_hip": (-0.1, 0.98, 0), "right_knee": (-0.1, 0.55, 0.02),
             "right_ankle": (-0.1, 0.1, 0), "left_hip": (0.1, 0.98, 0), "left_knee": (0.1, 0.55, 0.02),
             "left_ankle": (0.1, 0.1, 0), "spine": (0, 1.23, 0), "thorax": (0, 1.48, 0),
             "neck_nose": (0, 1.6, 0.05), "head_top": (0, 1.72, 0), "left_shoulder": (0.17, 1.47, 0),
             "left_elbow": (0.2, 1.2, 0), "left_wrist": (0.22, 0.95, 0.05), "right_shoulder": (-0.17, 1.47, 0),
             "right_elbow": (-0.2, 1.2, 0), "right_wrist": (-0.22, 0.95, 0.05)}
#: 544 GB: what an array header may claim in a few bytes.
_HUGE = (10**9, 17, 4)


def _joints(frames: int = 30) -> np.ndarray:
    """``(T,17,3)`` world joints in metres, Y up: a person standing and drifting sideways."""
    pose = np.array([_STANDING[n] for n in H36M17.names], dtype=np.float64)
    return pose[None] + np.linspace(0.0, 0.3, frames)[:, None, None] * [1.0, 0.0, 0.0]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """An ``.npy`` header claiming ``shape``, with 64 bytes of data."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _write(path: Path, arrays: dict[str, np.ndarray], extra: dict[str, bytes] | None = None,
           meta_text: str | None = None) -> Path:
    """``arrays`` as an ``.npz`` (``meta`` may be a dict, or raw JSON text), plus raw ``extra`` members."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name", on purpose
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, value in arrays.items():
                if name == "meta" and isinstance(value, dict):
                    value = np.array(json.dumps(value))
                zf.writestr(f"{name}.npy", _npy(value))
            if meta_text is not None:
                zf.writestr("meta.npy", _npy(np.array(meta_text)))
            for name, data in (extra or {}).items():
                zf.writestr(name, data)
    return path


# ---- 12. Motion files: one checked reader, bounded frames, joints, memory and meta ---------------

def _good_motion(folder: Path) -> Path:
    return save_motion_file(solve(_joints(), 30.0, "h36m"), folder / "good.motion.npz", world_joints=_joints())


def _motion_parts(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    arrays = _arrays(_good_motion(folder))
    return arrays, json.loads(str(arrays.pop("meta")))


def _alias(folder: Path, path: Path) -> Path:
    """``rotations`` beside ``rotations.npy``: numpy reads the former for ``npz["rotations"]``."""
    arrays, meta = _motion_parts(folder)
    return _write(path, {**arrays, "meta": meta}, extra={"rotations": _header(_HUGE)})


def _duplicate(folder: Path, path: Path) -> Path:
    arrays, meta = _motion_parts(folder)
    return _write(path, {**arrays, "meta": meta}, extra={"rotations.npy": _header(_HUGE)})


def _end_site(value: object) -> Callable[[Path, Path], Path]:
    def make(folder: Path, path: Path) -> Path:
        arrays, meta = _motion_parts(folder)
        meta["end_sites"] = {meta["joint_names"][-1]: value}
        return _write(path, {**arrays, "meta": meta})
    return make


def _deep_meta(folder: Path, path: Path) -> Path:
    arrays, meta = _motion_parts(folder)
    text = json.dumps(meta)[:-1] + ', "options": ' + "[" * 200_000 + "]" * 200_000 + "}"
    return _write(path, arrays, meta_text=text)


def _rig(joints: int, frames: int) -> tuple[dict[str, np.ndarray], dict]:
    """A chain of ``joints`` joints standing still for ``frames`` frames (honest, valid arrays)."""
    meta = {"format_name": "vp3d-motion", "format_version": 1, "fps": 30.0, "preset": "custom",
            "joint_names": [f"j{i}" for i in range(joints)], "end_sites": {}}
    rotations = np.zeros((frames, joints, 4))
    rotations[..., 0] = 1.0
    return {"parents": np.arange(-1, joints - 1, dtype=np.int32), "rest_offsets": np.full((joints, 3), 0.01),
            "rotations": rotations, "root_translation": np.zeros((frames, 3))}, meta


def _many_frames(folder: Path, path: Path) -> Path:
    arrays, meta = _rig(1, 250_000)
    np.savez_compressed(path, **arrays, meta=np.array(json.dumps(meta)))
    return path


def _many_joints(folder: Path, path: Path) -> Path:
    arrays, meta = _rig(300, 2)
    np.savez_compressed(path, **arrays, meta=np.array(json.dumps(meta)))
    return path


def _large_honest(folder: Path, path: Path) -> Path:
    """An honest Motion file of 180,000 frames of a 100-joint rig (576 MB of rotations, every array
    under the 1 GiB a single array may hold), streamed to disk (it compresses to about 1 MB)."""
    arrays, meta = _rig(100, 1)
    frames, chunk = 180_000, 2_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name in ("parents", "rest_offsets"):
            zf.writestr(f"{name}.npy", _npy(arrays[name]))
        zf.writestr("meta.npy", _npy(np.array(json.dumps(meta))))
        for name, row in (("rotations", arrays["rotations"][0]), ("root_translation", np.zeros(3))):
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                npy_format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (frames, *row.shape)})
                block = np.ascontiguousarray(np.broadcast_to(row, (chunk, *row.shape))).tobytes()
                for _ in range(frames // chunk):
                    f.write(block)
    return path


def _huge_values(folder: Path, path: Path) -> Path:
    arrays, meta = _motion_parts(folder)
    arrays["rotations"][3, 2] = 1e300
    return _write(path, {**arrays, "meta": meta})


MOTION_CASES = {
    "rotations beside rotations.npy": (_alias, "'rotations'"),
    "rotations.npy twice": (_duplicate, "second member"),
    "end_sites holding null": (_end_site([None, 0.0, 0.1]), "end_sites"),
    "end_sites nested": (_end_site([[0.0], [0.0], [0.1]]), "end_sites"),
    "end_sites as text": (_end_site(["0", "0", "0.1"]), "end_sites"),
    "meta nested 200,000 deep": (_deep_meta, "nested"),
    "250,000 frames": (_many_frames, "250,000 frames"),
    "300 joints": (_many_joints, "300 joints"),
    "576 MB of honest rotations": (_large_honest, "MiB of arrays"),
    "a rotation of 1e300": (_huge_values, "1e+300"),
}


@pytest.mark.parametrize("case", list(MOTION_CASES))
def test_a_hostile_motion_file_is_one_input_file_error(tmp_path: Path, case: str) -> None:
    """What the Blender add-on calls: one clear error, quickly (nothing allocated from a header)."""
    make, needle = MOTION_CASES[case]
    path = make(tmp_path, tmp_path / "take.motion.npz")
    start = time.monotonic()
    with pytest.raises(InputFileError) as err:
        load_motion_file(path)
    assert needle in str(err.value) and "take.motion.npz" in str(err.value), str(err.value)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("case", list(MOTION_CASES))
def test_a_hostile_motion_file_is_refused_by_vp3d_convert(tmp_path: Path, case: str) -> None:
    make, needle = MOTION_CASES[case]
    make(tmp_path, tmp_path / "take.motion.npz")
    result = run("vp3d-convert", "take.motion.npz", "--bvh", "--out", "out", "--quiet", cwd=tmp_path,
                 memory_limit=MEMORY_LIMIT, timeout=120)
    assert_refused(result, "take.motion.npz", needle)
    assert not (tmp_path / "out").exists()


def test_an_ordinary_motion_file_still_converts(tmp_path: Path) -> None:
    _good_motion(tmp_path)
    assert load_motion_file(tmp_path / "good.motion.npz").motion.num_frames == 30
    result = run("vp3d-convert", "good.motion.npz", "--bvh", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "out" / "good.bvh").is_file()


# ---- 12. The other .npz readers: exact member names, every member checked ----------------------

def _result(path: Path, joints: np.ndarray | None = None, source: str = "elsewhere/original.mp4",
            extra: dict[str, bytes] | None = None, **changes: np.ndarray) -> Path:
    """A ``vp3d-convert`` result of a person standing (2D, 3D in camera space, meta)."""
    camera = (_joints() if joints is None else joints) * [1.0, -1.0, 1.0] + [0.0, 1.0, 4.0]
    t = len(camera)
    arrays = {"keypoints_2d": camera[..., :2] / camera[..., 2:] * 500 + [320, 240], "scores": np.ones((t, 17)),
              "valid": np.ones((t, 17), bool), "joints_3d": camera,
              "joints_3d_root_relative": camera - camera[:, :1], "trajectory": camera[:, 0],
              "timestamps": np.arange(t) / 30.0, "foot_contacts": np.zeros((t, 2), bool), **changes}
    meta = {"format_name": "vp3d-result", "version": 1, "source": source, "fps": 30.0, "image_size": [640, 480],
            "has_trajectory": True}
    return _write(path, {**arrays, "meta": meta}, extra=extra)


def test_a_result_with_a_member_named_without_npy(tmp_path: Path) -> None:
    _result(tmp_path / "clip.npz", extra={"trajectory": _header((10**10, 3))})
    for args in (["clip.npz", "--bvh"], ["--keypoints", "clip.npz", "--bvh"]):
        result = run("vp3d-convert", *args, "--out", "out", "--quiet", cwd=tmp_path, memory_limit=MEMORY_LIMIT)
        assert_refused(result, "clip.npz", "'trajectory'")
    assert not (tmp_path / "out").exists()


def test_vp3d_2d_and_3d_files_with_a_member_named_without_npy(tmp_path: Path) -> None:
    t = 30
    kp = Keypoints2D(xy=np.full((t, 17, 2), 300.0), score=np.ones((t, 17)), valid=np.ones((t, 17), bool),
                     format="coco17", image_size=(640, 480), fps=30.0, timestamps=np.arange(t) / 30.0)
    _write(tmp_path / "kp.npz", {**_arrays(kp.save(tmp_path / "plain_kp.npz"))}, extra={"xy": _header((10**10, 2))})
    pose = Pose3D(joints=_joints(), frame="world", fps=30.0, timestamps=np.arange(t) / 30.0, confidence=np.ones(t))
    _write(tmp_path / "pose.npz", _arrays(pose.save(tmp_path / "plain_pose.npz")), extra={"joints": _header(_HUGE)})
    for name, needle in (("kp.npz", "'xy'"), ("pose.npz", "'joints'")):
        result = run("vp3d-convert", name, "--bvh", "--out", "out", "--quiet", cwd=tmp_path, memory_limit=MEMORY_LIMIT)
        assert_refused(result, name, needle)
    assert not (tmp_path / "out").exists()


def test_vp3d_train_unlabeled_with_a_member_named_without_npy(tmp_path: Path) -> None:
    _result(tmp_path / "clip.npz", extra={"keypoints_2d": _header((10**10, 17, 2))})
    (tmp_path / "takes").mkdir()
    result = run("vp3d", "train", "--data", "takes", "--out", "ck", "--unlabeled", "clip.npz", "--lifter", "test",
                 "--epochs", "1", "--device", "cpu", "--quiet", cwd=tmp_path, memory_limit=MEMORY_LIMIT)
    assert_refused(result, "clip.npz", "'keypoints_2d'")
    assert not (tmp_path / "ck").exists()


# ---- 14. Extreme values: one error, no numpy warning ------------------------------------------

def test_a_joints_array_holding_1e300(tmp_path: Path) -> None:
    from vp3d_engine.readers import load_pose_file

    joints = _joints()
    joints[:, 3] = 1e300
    np.save(tmp_path / "far.npy", joints)
    with pytest.raises(InputFileError, match="1e\\+300"):
        load_pose_file(tmp_path / "far.npy")
    assert_refused(run("vp3d-convert", "far.npy", "--bvh", "--quiet", cwd=tmp_path), "far.npy", "1e+300")
    assert not (tmp_path / "far.bvh").exists()


@pytest.mark.parametrize("damage", ["timestamps 1e308", "joints 1e300"])
def test_a_result_holding_extreme_values(tmp_path: Path, damage: str) -> None:
    from vp3d_engine.readers import load_result_npz

    if damage.startswith("timestamps"):
        _result(tmp_path / "clip.npz", timestamps=np.r_[-1e308, np.arange(1, 29) / 30.0, 1e308])
    else:
        joints = _joints()
        joints[:, 5] = 1e300
        _result(tmp_path / "clip.npz", joints=joints)
    with pytest.raises(InputFileError, match=r"clip\.npz"):
        load_result_npz(tmp_path / "clip.npz")
    assert_refused(run("vp3d-convert", "clip.npz", "--bvh", "--quiet", cwd=tmp_path), "clip.npz")


@pytest.mark.parametrize("form", ["plain array", "plain array with scores", "COCO JSON"])
def test_2d_keypoints_at_1e308_pixels(tmp_path: Path, form: str) -> None:
    """One joint of 17 at +-1e308 px: more than the 5% of far-off keypoints a detector's glitch
    explains, so refused as a wrong image size, in one line, with no numpy warning (a few such
    keypoints are tolerated: test_review_findings.py)."""
    xy = np.full((30, 17, 2), 300.0) + np.arange(17)[None, :, None]
    xy[:, 3] = [1e308, -1e308]
    if form == "COCO JSON":
        name = "kp.json"
        (tmp_path / name).write_text(json.dumps([
            {"image_id": t, "category_id": 1, "keypoints": np.c_[xy[t], np.ones(17)].ravel().tolist()}
            for t in range(30)]))
    else:
        name = "kp.npy"
        np.save(tmp_path / name, xy if form == "plain array" else np.concatenate([xy, np.ones((30, 17, 1))], -1))
    result = run("vp3d-convert", name, "--image-size", "640x480", "--bvh", "--out", "out", "--quiet", cwd=tmp_path,
                 env={"PYTHONWARNINGS": "error::RuntimeWarning"})
    assert_refused(result, name, "far outside the 640x480-pixel image")
    assert not (tmp_path / "out").exists()


# ---- 14. Errors name the file given, not the source recorded inside it --------------------------

def test_errors_name_the_file_given_not_its_recorded_source(tmp_path: Path) -> None:
    flat = np.zeros((30, 17, 3))  # a pose with no extent: refused by the world stage, naming the input
    _result(tmp_path / "clip.npz", joints=flat, source="elsewhere/original.mp4")
    motion = solve(_joints(), 30.0, "h36m")
    motion.meta["source"] = "elsewhere/original.mp4"
    save_motion_file(motion, tmp_path / "take.motion.npz", world_joints=flat)
    Pose3D(joints=flat, frame="world", fps=30.0, timestamps=np.arange(30) / 30.0, confidence=np.ones(30),
           meta={"source": "elsewhere/original.mp4"}).save(tmp_path / "pose.npz")
    for name in ("clip.npz", "take.motion.npz", "pose.npz"):
        line = assert_refused(run("vp3d-convert", name, "--bvh", "--out", "out", "--quiet", cwd=tmp_path), name,
                              "no extent")
        assert "original.mp4" not in line, line


# ---- 14. File names: escapes and new lines quoted, long legal names written ---------------------

def test_names_with_terminal_escapes_and_new_lines_are_printed_quoted(tmp_path: Path) -> None:
    good, bad = "clip\x1b[31m\nfake line.npy", "bad\x1b]0;title\x07\rname.npy"
    latin1 = os.fsdecode(b"caf\xe9.npy")  # a byte that is not UTF-8: printing it raw fails
    np.save(tmp_path / good, _joints())
    np.save(tmp_path / latin1, _joints())
    np.save(tmp_path / bad, np.zeros((5, 3)))
    result = run("vp3d-convert", good, latin1, bad, "--bvh", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "\x1b" not in result.stdout + result.stderr and "\r" not in result.stdout + result.stderr
    out, err = result.stdout.splitlines(), error_lines(result)
    assert len(out) == 3 and out[2] == "2 converted, 1 failed", out
    assert out[0].startswith("clip\\x1b[31m\\nfake line.npy: -> out/clip\\x1b[31m\\nfake line.bvh"), out
    assert out[1].startswith("caf\\xe9.npy: -> out/caf\\xe9.bvh"), out
    assert len(err) == 1 and "bad\\x1b]0;title\\x07\\rname.npy" in err[0], err
    assert (tmp_path / "out" / "clip\x1b[31m\nfake line.bvh").is_file()
    assert (tmp_path / "out" / os.fsdecode(b"caf\xe9.bvh")).is_file()


def test_a_legal_245_character_name_is_written(tmp_path: Path) -> None:
    name = "a" * 241
    np.save(tmp_path / f"{name}.npy", _joints())
    result = run("vp3d-convert", f"{name}.npy", "--bvh", "--glb", "--motion", "--out", "out", "--quiet",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{name}{end}" for end in (".bvh", ".glb", ".motion.npz"))
    assert temporaries(tmp_path) == []


def test_a_temporary_name_fits_and_is_recognised_as_vp3d_s(tmp_path: Path) -> None:
    """Temporary names of long targets fit the file system, keep a short suffix, and a later run
    removes them once their writer is gone."""
    from converters.fileio import NAME_MAX, remove_stale_temps

    names = ["a" * 251 + ".bvh", "é" * 125 + ".glb", "x." + "b" * 253, "clip.bvh"]
    code = ("import sys; from converters.fileio import temp_path\n"
            "for name in sys.argv[2:]: print(temp_path(sys.argv[1] + '/' + name).name)")
    made = subprocess.run([sys.executable, "-c", code, str(tmp_path), *names], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2]).stdout.splitlines()
    assert len(made) == len(names)
    for name, tmp in zip(names, made, strict=True):
        assert len(os.fsencode(tmp)) <= NAME_MAX and tmp.startswith(f".{name[:20]}"), tmp
        assert tmp.endswith(".bvh" if name.endswith(".bvh") else ".glb" if name.endswith(".glb") else tmp[-8:])
        (tmp_path / tmp).write_text("left by a killed run")
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted(made)
    assert list(tmp_path.iterdir()) == []
