"""Camera space to the Y-up world frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from converters.bvh import read_bvh
from converters.joints import H36M17
from converters.skeleton_maps import mocap_joints
from converters.types import Pose3D
from converters.world import camera_to_world

I = {n: i for i, n in enumerate(H36M17.names)}  # noqa: E741


@pytest.mark.shared_data
@pytest.mark.parametrize(("pitch", "yaw"), [(0.0, 0.0), (25.0, 130.0), (-8.0, -60.0)])
def test_world_frame_is_upright_on_the_floor_and_facing_z(shared_data: Path, pitch: float, yaw: float) -> None:
    world = mocap_joints(read_bvh(shared_data / "mocap" / "bandai-namco-1" / "dataset-1_walk_normal_001.bvh")).h36m
    # Film it: a camera 4 m away, turned by yaw, looking down by pitch (camera y down, z forward).
    to_cam = Rotation.from_euler("xy", [pitch, yaw], degrees=True).as_matrix() @ np.diag([1.0, -1.0, -1.0])
    cam = (world - world[0, 0] + [0.0, 0.0, -4.0]) @ to_cam.T
    pose = Pose3D(joints=cam - cam[:, :1], frame="camera", fps=30.0, timestamps=np.arange(len(cam)) / 30,
                  confidence=np.ones(len(cam)), trajectory=cam[:, 0])
    out = camera_to_world(pose)
    # Heights above the pelvis survive (up found from the body to within a few degrees).
    rel_true = world[..., 1] - world[:, :1, 1]
    rel_out = out[..., 1] - out[:, :1, 1]
    assert np.abs(rel_out - rel_true).mean() < 0.02
    # Feet on the floor, facing +Z with the left hip on +X at frame 0, root above the origin.
    lowest = np.minimum(out[:, I["left_ankle"], 1], out[:, I["right_ankle"], 1])
    assert np.percentile(lowest, 2) == pytest.approx(0.08, abs=1e-9)
    left = out[0, I["left_hip"]] - out[0, I["right_hip"]]
    assert left[0] > 0.1 and abs(left[2]) < 0.02
    assert np.allclose(out[0, 0, [0, 2]], 0.0)
    # The walk itself is kept: distance covered and bone lengths unchanged.
    assert np.linalg.norm(out[-1, 0] - out[0, 0]) == pytest.approx(np.linalg.norm(world[-1, 0] - world[0, 0]),
                                                                   rel=1e-6)


@pytest.mark.shared_data
def test_a_walker_leaning_forward_still_walks_on_a_level_floor(shared_data: Path) -> None:
    """The body's up leans with a forward-leaning walker; the floor under the planted feet does not.
    Up from the body alone would tilt the world and the walk would climb a slope."""
    from converters.world import FLOOR_PRIOR_M

    world = mocap_joints(read_bvh(shared_data / "mocap" / "cmu" / "02_01.bvh")).h36m
    upper = [I[n] for n in ("spine", "thorax", "neck_nose", "head_top", "left_shoulder", "left_elbow",
                            "left_wrist", "right_shoulder", "right_elbow", "right_wrist")]
    heading = world[-1, 0] - world[0, 0]
    heading[1] = 0.0
    side = np.cross([0.0, 1.0, 0.0], heading / np.linalg.norm(heading))
    lean = Rotation.from_rotvec(np.radians(20.0) * side).as_matrix()  # bowing along the walk
    leaning = world.copy()
    leaning[:, upper] = (world[:, upper] - world[:, :1]) @ lean.T + world[:, :1]
    to_cam = Rotation.from_euler("xy", [15.0, 70.0], degrees=True).as_matrix() @ np.diag([1.0, -1.0, -1.0])
    cam = (leaning - leaning[0, 0] + [0.0, 0.0, -5.0]) @ to_cam.T
    pose = Pose3D(joints=cam - cam[:, :1], frame="camera", fps=120.0, timestamps=np.arange(len(cam)) / 120,
                  confidence=np.ones(len(cam)), trajectory=cam[:, 0])

    def climb(joints: np.ndarray) -> float:
        """Height gained by the lower ankle from the first to the last second, metres."""
        low = joints[:, [I["left_ankle"], I["right_ankle"]], 1].min(axis=1)
        return abs(float(np.median(low[-120:]) - np.median(low[:120])))

    assert climb(world) < 0.05  # the real floor is level (the gait phase differs a little)
    assert climb(camera_to_world(pose)) < 0.03
    with pytest.MonkeyPatch.context() as mp:  # the body's up alone: a weight no floor can beat
        mp.setattr("converters.world.FLOOR_PRIOR_M", 100.0)
        from converters import world as world_module

        assert world_module.FLOOR_PRIOR_M != FLOOR_PRIOR_M
        assert climb(camera_to_world(pose)) > 0.15


@pytest.mark.shared_data
def test_settling_removes_a_slow_climb_and_keeps_a_jump(shared_data: Path) -> None:
    """A reconstruction that drifts 40 cm up over a walk (a zoom read as walking closer) is put
    back on the floor; a 0.3 s hop of 25 cm in the middle stays a hop."""
    from converters.world import ANKLE_HEIGHT_M, settle_on_floor

    bvh = read_bvh(shared_data / "mocap" / "bandai-namco-1" / "dataset-1_walk_normal_001.bvh")
    world = mocap_joints(bvh).h36m
    lower = lambda j: np.minimum(j[:, I["left_ankle"], 1], j[:, I["right_ankle"], 1])  # noqa: E731
    world = world + [0.0, ANKLE_HEIGHT_M - float(np.percentile(lower(world), 10)), 0.0]
    frames = len(world)
    hop = np.zeros(frames)
    middle = frames // 2
    hop[middle:middle + 9] = 0.25 * np.sin(np.linspace(0, np.pi, 9))
    drifted = world + (np.linspace(0.0, 0.4, frames) + hop)[:, None, None] * [0.0, 1.0, 0.0]
    settled, offset = settle_on_floor(drifted, bvh.fps)
    assert np.ptp(offset) > 0.3
    # On the floor from start to end (the walk's own ankle motion left as it was) ...
    error = settled[..., 1] - (world[..., 1] + hop[:, None])
    assert np.abs(np.median(error[: frames // 4])) < 0.03 and np.abs(np.median(error[-frames // 4:])) < 0.03
    # ... and the hop still leaves the floor by about its height.
    peak = lower(settled)[middle + 4] - np.median(lower(settled)[middle - 15: middle - 5])
    assert peak > 0.18
