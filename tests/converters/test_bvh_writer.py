"""BVH writing: what the project's reader reads back moves exactly like the Motion written."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from converters.bvh import forward_kinematics as bvh_fk
from converters.bvh import read_bvh
from converters.bvh_writer import write_bvh
from converters.errors import ConversionError
from converters.motion import forward_kinematics
from converters.skeleton_maps import mocap_joints
from converters.solve import solve


@pytest.fixture(scope="module")
def motion(shared_data: Path):  # type: ignore[no-untyped-def]
    joints = mocap_joints(read_bvh(shared_data / "mocap" / "cmu" / "02_01.bvh")).h36m
    return solve(joints, 120.0)


@pytest.mark.shared_data
@pytest.mark.parametrize(("units", "scale"), [("cm", 100.0), ("m", 1.0)])
@pytest.mark.parametrize("order", ["ZXY", "XYZ"])
def test_written_bvh_reproduces_the_motion(motion, tmp_path: Path, units: str, scale: float,  # type: ignore[no-untyped-def]
                                           order: str) -> None:
    path = write_bvh(motion, tmp_path / "walk.bvh", units=units, order=order)
    bvh = read_bvh(path)
    assert bvh.names == motion.rig.names and bvh.num_frames == motion.num_frames
    assert bvh.fps == pytest.approx(120.0, rel=1e-6)
    assert bvh.channels[0][:3] == ("Xposition", "Yposition", "Zposition")
    assert all(c == tuple(f"{a}rotation" for a in order) for c in bvh.channels[1:])
    read_positions, _ = bvh_fk(bvh, scale=1.0 / scale)
    expected, _ = forward_kinematics(motion)
    assert np.abs(read_positions - expected).max() < 1e-4  # 0.1 mm: six decimals of text
    # Upright: head above pelvis above ankles in every frame.
    names = list(bvh.names)
    y = read_positions[..., 1]
    assert (y[:, names.index("head_top")] > y[:, names.index("pelvis")]).all()
    assert (y[:, names.index("pelvis")] > y[:, names.index("left_ankle")]).all()
    # No channel jumps by a full turn between frames.
    assert np.abs(np.diff(bvh.motion[:, 3:], axis=0)).max() < 90


def test_bad_options_are_refused(tmp_path: Path, motion) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConversionError, match="units"):
        write_bvh(motion, tmp_path / "x.bvh", units="inch")
    with pytest.raises(ConversionError, match="Euler order"):
        write_bvh(motion, tmp_path / "x.bvh", order="XXY")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.shared_data
@pytest.mark.parametrize("preset", ["mixamo", "ue"])
def test_a_third_party_parser_reads_the_same_motion(shared_data: Path, tmp_path: Path, preset: str) -> None:
    # bvhio (PyPI, MIT) parses the file and does its own forward kinematics with PyGLM.
    with warnings.catch_warnings():  # PyGLM warns about its own import name, which bvhio uses
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import bvhio

    joints = mocap_joints(read_bvh(shared_data / "mocap" / "cmu" / "02_01.bvh")).h36m
    motion = solve(joints, 120.0, preset)
    path = write_bvh(motion, tmp_path / "walk.bvh")
    container = bvhio.readAsBvh(str(path))
    assert container.FrameCount == motion.num_frames and container.FrameTime == pytest.approx(1 / 120, rel=1e-6)
    root = bvhio.readAsHierarchy(str(path))
    joints_read = {joint.Name: joint for joint, _, _ in root.layout()}
    assert set(joints_read) == set(motion.rig.names)
    expected, _ = forward_kinematics(motion)
    for frame in (0, 57, motion.num_frames - 1):
        root.loadPose(frame)
        got = np.array([list(joints_read[n].PositionWorld) for n in motion.rig.names]) / 100.0
        assert np.abs(got - expected[frame]).max() < 1e-5, frame  # float32 maths in PyGLM


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_euler_angles_match_scipy_and_gimbal_lock_keeps_the_rotation(order: str) -> None:
    from scipy.spatial.transform import Rotation

    from converters.bvh_writer import _quaternions_to_euler

    rng = np.random.default_rng(5)
    free = Rotation.random(500, random_state=5)
    angles = np.stack(_quaternions_to_euler(free.as_quat(scalar_first=True), order), axis=-1)
    np.testing.assert_allclose(angles, free.as_euler(order), atol=1e-12)
    locked_euler = rng.uniform(-np.pi, np.pi, (500, 3))
    locked_euler[:, 1] = rng.choice([-np.pi / 2, np.pi / 2], 500)
    locked = Rotation.from_euler(order, locked_euler)
    back = Rotation.from_euler(order, np.stack(_quaternions_to_euler(locked.as_quat(scalar_first=True), order), -1))
    np.testing.assert_allclose(back.as_matrix(), locked.as_matrix(), atol=1e-12)
