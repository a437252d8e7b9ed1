"""The root trajectory made consistent with the 2D: a real walk filmed by a known pinhole camera,
with a trajectory that wobbles in depth and travels too little, as the model's does on real video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.bvh import read_bvh
from converters.skeleton_maps import mocap_joints
from converters.trajectory import clean_trajectory, fit_root

WALK = "cmu/02_01.bvh"
SIZE, FOCAL = (1920, 1080), 1100.0


def _film(world: np.ndarray, start: np.ndarray, distance: float) -> np.ndarray:
    """World (Y up) to camera space (x right, y down, z forward), the camera level, ``distance``
    in front of where the walk starts (``start``), looking along world -Z."""
    return world * [1.0, -1.0, -1.0] + [-start[0], 1.0, distance + start[2]]


def _project(cam: np.ndarray) -> np.ndarray:
    return FOCAL * cam[..., :2] / cam[..., 2:3] + np.array(SIZE) / 2


@pytest.fixture(scope="module")
def walk(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    bvh = read_bvh(shared_data / "mocap" / WALK)
    joints = mocap_joints(bvh)
    # The CMU walk goes along world Z: film it from the side so it crosses the picture.
    turn = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    h36m, coco = joints.h36m @ turn.T, joints.coco @ turn.T
    h36m_cam, coco_cam = _film(h36m, h36m[0, 0], 6.0), _film(coco, h36m[0, 0], 6.0)
    return h36m_cam, _project(coco_cam), h36m_cam[:, 0], bvh.fps


@pytest.mark.shared_data
def test_root_fit_recovers_the_true_root_from_pose_and_2d(walk: tuple[np.ndarray, ...]) -> None:
    h36m, xy, root, _ = walk
    rel = h36m - h36m[:, :1]
    fitted, ok = fit_root(rel, xy, np.ones(xy.shape[:2]), FOCAL, (SIZE[0] / 2, SIZE[1] / 2))
    assert ok.all()
    np.testing.assert_allclose(fitted, root, atol=1e-6)


@pytest.mark.shared_data
def test_depth_wobble_is_removed_and_travel_matches_the_picture(walk: tuple[np.ndarray, ...]) -> None:
    h36m, xy, root, fps = walk
    rel = h36m - h36m[:, :1]
    t = np.arange(len(root)) / fps
    model = root.copy()
    model[:, 2] += 0.5 * np.sin(2 * np.pi * 1.0 * t)  # pumps in depth
    model[:, :2] = model[:, :2].mean(axis=0) + 0.6 * (model[:, :2] - model[:, :2].mean(axis=0))  # travels too little
    cleaned, figures = clean_trajectory(rel, model, xy, np.full(xy.shape[:2], 0.9), SIZE, fps)  # type: ignore[misc]

    def travel(path: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(path[:, [0, 2]], axis=0), axis=1).sum())

    assert abs(travel(cleaned) / travel(root) - 1) < 0.1, (travel(cleaned), travel(root), travel(model))
    # Depth: the scale follows the model's median (a few cm off here), the wobble is gone.
    assert np.abs(cleaned[:, 2] - root[:, 2]).mean() < 0.3 * np.abs(model[:, 2] - root[:, 2]).mean()
    assert np.ptp(cleaned[:, 2] - root[:, 2]) < 0.1
    assert np.abs(cleaned[:, 0] - root[:, 0]).mean() < 0.05
    assert figures["depth_range_m"] < figures["depth_range_model_m"]
    assert figures["focal_px"] == pytest.approx(FOCAL, rel=0.05)


def test_too_few_keypoints_leave_the_model_trajectory() -> None:
    rel = np.zeros((10, 17, 3))
    model = np.tile([0.0, 0.0, 4.0], (10, 1))
    assert clean_trajectory(rel, model, np.zeros((10, 17, 2)), np.zeros((10, 17)), SIZE, 30.0) is None
