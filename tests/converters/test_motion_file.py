"""The Motion file: written and read back exactly, readable with numpy alone, validated on load,
and a valid input to re-export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters.bvh import read_bvh
from converters.errors import InputFileError
from converters.motion import forward_kinematics
from converters.motion_file import load_motion_file, save_motion_file
from converters.skeleton_maps import mocap_joints
from converters.solve import solve

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def take(shared_data: Path) -> np.ndarray:
    return mocap_joints(read_bvh(shared_data / "mocap" / "cmu" / "02_01.bvh")).h36m


def test_round_trip_keeps_everything(take: np.ndarray, tmp_path: Path) -> None:
    motion = solve(take, 120.0, "mixamo")
    contacts = np.zeros((len(take), 2), dtype=bool)
    contacts[::3, 0] = True
    path = save_motion_file(motion, tmp_path / "take.motion.npz", world_joints=take, foot_contacts=contacts)
    back = load_motion_file(path)
    assert back.motion.rig.names == motion.rig.names and back.motion.rig.preset == "mixamo"
    np.testing.assert_array_equal(back.motion.rig.parents, motion.rig.parents)
    np.testing.assert_allclose(back.motion.rotations, motion.rotations, atol=1e-12)
    np.testing.assert_array_equal(back.motion.root_translation, motion.root_translation)
    assert back.motion.fps == 120.0 and back.motion.meta["preset"] == "mixamo"
    np.testing.assert_array_equal(back.world_joints, take)
    np.testing.assert_array_equal(back.foot_contacts, contacts)
    np.testing.assert_allclose(forward_kinematics(back.motion)[0], forward_kinematics(motion)[0], atol=1e-9)
    assert back.meta["units"] == "m" and back.meta["format_version"] == 1 and back.camera is None  # 2 adds a camera


def test_numpy_alone_reads_it(take: np.ndarray, tmp_path: Path) -> None:
    """As in Blender's Python: no scipy, no torch."""
    path = save_motion_file(solve(take, 120.0, "ue"), tmp_path / "take.motion.npz")
    code = ("import sys; sys.modules['scipy'] = None; sys.modules['torch'] = None\n"
            "from converters.motion_file import load_motion_file\n"
            f"m = load_motion_file({str(path)!r}).motion\n"
            "print(m.rig.names[0], m.num_frames)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["pelvis", str(len(take))]


def _broken(src: Path, dst: Path, **changes: object) -> Path:
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        if key in arrays and isinstance(value, np.ndarray):
            arrays[key] = value
        elif value is None:
            arrays.pop(key, None)
        else:
            meta[key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(dst, **arrays)
    return dst


@pytest.mark.parametrize(("change", "needle"), [
    ({"rotations": None}, "no rotations"),
    ({"format_version": 3}, "newer than this vp3d reads"),
    ({"format_name": "something"}, "not a Motion file"),
    ({"fps": 0}, "frame rate 0"),
    ({"joint_names": ["a"]}, "joint_names must be"),
    ({"parents": np.array([0, 0, 1])}, "parents must list the root first"),
    ({"rotations": np.ones((4, 3, 4))}, "not unit quaternions"),
    ({"root_translation": np.full((4, 3), np.nan)}, "NaN"),
    ({"rest_offsets": np.zeros((2, 3))}, "rest_offsets has shape (2, 3)"),
])
def test_broken_files_are_refused_clearly(tmp_path: Path, change: dict[str, object], needle: str) -> None:
    from converters.motion import Motion, Rig

    rig = Rig(names=("a", "b", "c"), parents=np.array([-1, 0, 1]), rest_offsets=np.eye(3) * 0.3, preset="custom")
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (4, 3, 1))
    good = save_motion_file(Motion(rig, quats, np.zeros((4, 3)), 30.0), tmp_path / "good.motion.npz")
    load_motion_file(good)
    with pytest.raises(InputFileError, match=None) as err:
        load_motion_file(_broken(good, tmp_path / "bad.motion.npz", **change))
    assert needle in str(err.value) and "bad.motion.npz" in str(err.value)


def test_the_cli_writes_it_and_reexports_from_it(shared_data: Path, tmp_path: Path) -> None:
    from vp3d_engine.convert_cli import main

    source = shared_data / "mocap" / "cmu" / "02_01.bvh"
    assert main([str(source), "--out", str(tmp_path / "a"), "--motion", "--bvh", "--rig", "ue", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["02_01.bvh", "02_01.motion.npz"]
    assert main([str(tmp_path / "a" / "02_01.motion.npz"), "--out", str(tmp_path / "b"), "--bvh", "--rig", "ue",
                 "--quiet"]) == 0
    from converters.bvh import forward_kinematics as bvh_fk

    direct, _ = bvh_fk(read_bvh(tmp_path / "a" / "02_01.bvh"), scale=0.01)
    again, _ = bvh_fk(read_bvh(tmp_path / "b" / "02_01.bvh"), scale=0.01)
    assert np.abs(direct - again).max() < 1e-6  # the same animation (text may differ in the sign of a zero)


@pytest.mark.parametrize("mode", ["in-place", "off"])
def test_root_motion_can_stay_in_place(shared_data: Path, tmp_path: Path, mode: str) -> None:
    """A walk (CMU 02_01) travels metres; in place it keeps only its height, off not even that."""
    from vp3d_engine.convert_cli import main

    source = shared_data / "mocap" / "cmu" / "02_01.bvh"
    for name, flags in (("on", []), (mode, ["--root-motion", mode])):
        assert main([str(source), "--out", str(tmp_path / name), "--motion", "--quiet", *flags]) == 0
    on = load_motion_file(tmp_path / "on" / "02_01.motion.npz").motion.root_translation
    held = load_motion_file(tmp_path / mode / "02_01.motion.npz")
    root = held.motion.root_translation
    assert np.ptp(on[:, [0, 2]], axis=0).max() > 1.0  # the walk covers metres
    assert np.ptp(root[:, [0, 2]], axis=0).max() < 1e-9
    if mode == "in-place":
        np.testing.assert_allclose(root[:, 1], on[:, 1])  # the bob of the walk stays
    else:
        assert np.ptp(root[:, 1]) < 1e-9
    np.testing.assert_allclose(held.world_joints[:, 0], root, atol=0.05)  # the joints are held with it
    assert held.motion.meta["root_motion"] == mode


def test_the_camera_round_trips_and_format_1_files_still_read(take: np.ndarray, tmp_path: Path) -> None:
    """Format 2 adds the video's camera (rotations, positions, focal length, image size); a file of
    format 1, without one, reads as before; a broken camera is refused, naming the file."""
    from scipy.spatial.transform import Rotation

    from converters.motion_file import MotionCamera

    motion = solve(take, 120.0, "h36m")
    t = motion.num_frames
    turns = Rotation.from_euler("yxz", np.stack([np.linspace(0, 30, t), np.linspace(0, -10, t), np.zeros(t)], 1),
                                degrees=True).as_matrix()
    positions = np.stack([np.zeros(t), np.full(t, 1.5), np.linspace(-4, -3, t)], axis=1)
    path = save_motion_file(motion, tmp_path / "cam.motion.npz", camera=MotionCamera(turns, positions, 900.0,
                                                                                      (1920, 1080)))
    back = load_motion_file(path)
    assert back.meta["format_version"] == 2
    assert back.camera is not None and back.camera.focal_px == 900.0 and back.camera.image_size == (1920, 1080)
    np.testing.assert_allclose(back.camera.rotations, turns, atol=1e-9)
    np.testing.assert_allclose(back.camera.positions, positions)
    with np.load(path) as npz:  # the same file as format 1 wrote it: no camera, version 1
        arrays = {k: npz[k] for k in npz.files if not k.startswith("camera_")}
    meta = json.loads(str(arrays["meta"]))
    meta["format_version"] = 1
    meta.pop("camera")
    np.savez(tmp_path / "old.motion.npz", **{**arrays, "meta": np.array(json.dumps(meta))})
    old = load_motion_file(tmp_path / "old.motion.npz")
    assert old.camera is None and old.motion.num_frames == t
    broken = {**arrays, "camera_rotations": np.zeros((t, 4)), "camera_positions": positions,
              "meta": np.array(json.dumps({**meta, "format_version": 2, "camera": {"focal_px": 900.0,
                                                                                   "image_size": [1920, 1080]}}))}
    np.savez(tmp_path / "broken.motion.npz", **broken)
    with pytest.raises(InputFileError, match=r"broken\.motion\.npz: camera_rotations are not unit quaternions"):
        load_motion_file(tmp_path / "broken.motion.npz")
