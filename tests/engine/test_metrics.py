"""Error metrics against known answers."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from vp3d_engine import metrics


def _pose(seed: int = 0, frames: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(frames, 17, 3))


def test_mpjpe_of_a_constant_offset_is_its_length() -> None:
    gt = _pose()
    assert np.isclose(metrics.mpjpe(gt + [0.03, 0.04, 0.0], gt), 0.05)


def test_p_mpjpe_removes_rotation_scale_and_translation() -> None:
    gt = _pose()
    rot = Rotation.from_euler("xyz", [0.3, -1.2, 2.5]).as_matrix()
    moved = 1.7 * gt @ rot.T + [1.0, -2.0, 0.5]
    assert metrics.mpjpe(moved, gt) > 0.5
    assert metrics.p_mpjpe(moved, gt) < 1e-9


def test_p_mpjpe_does_not_use_reflections() -> None:
    gt = _pose()
    mirrored = gt * [-1.0, 1.0, 1.0]
    assert metrics.p_mpjpe(mirrored, gt) > 0.1


def test_n_mpjpe_removes_scale_only() -> None:
    gt = _pose()
    assert metrics.n_mpjpe(0.5 * gt, gt) < 1e-12
    assert metrics.n_mpjpe(gt + 0.1, gt) > 0.01


def test_mpjve_ignores_constant_offsets_but_sees_jitter() -> None:
    gt = _pose(frames=30)
    assert metrics.mpjve(gt + 0.2, gt) < 1e-12
    jitter = gt + np.random.default_rng(1).normal(scale=0.01, size=gt.shape)
    assert metrics.mpjve(jitter, gt) > 0.005
