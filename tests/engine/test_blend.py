"""Blending MediaPipe's own 3D into the lifted pose (vp3d_engine.lifters.blend), on poses with known
truth: two estimates with independent errors, the detector's in its own orientation, shaking from
frame to frame, with mirrored labels in places and frames where it found nobody."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from converters.joints import H36M17
from converters.types import Pose3D
from vp3d_engine.lifters.blend import blend_detector_3d

FPS = 30.0
# A standing body (metres, camera axes: x right, y down), pelvis at the origin.
REST = np.array([[0, 0, 0], [-0.1, 0, 0], [-0.1, 0.45, 0], [-0.1, 0.88, 0], [0.1, 0, 0], [0.1, 0.45, 0],
                 [0.1, 0.88, 0], [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, -0.05], [0, -0.72, 0], [0.18, -0.48, 0],
                 [0.2, -0.2, 0], [0.22, 0.05, 0], [-0.18, -0.48, 0], [-0.2, -0.2, 0], [-0.22, 0.05, 0]])


def _truth(t: int) -> np.ndarray:
    """Arms and legs swinging, the body turning slowly: (t,17,3)."""
    phase = np.arange(t) / FPS * 2 * np.pi * 0.8
    joints = np.repeat(REST[None], t, axis=0)
    # Both arms reach forward together, one leg steps: a body a mirror would not turn into itself.
    for top, limb, sign in ((11, (12, 13), 1.5), (14, (15, 16), 1.0), (1, (2, 3), -1), (4, (5, 6), 0.3)):
        swing = Rotation.from_euler("x", (sign * 0.6 * np.sin(phase))[:, None])
        for j in limb:
            joints[:, j] = joints[:, top] + swing.apply(REST[j] - REST[top])
    turn = Rotation.from_euler("y", (0.4 * np.sin(phase / 5))[:, None])
    return np.stack([turn[f].apply(joints[f]) for f in range(t)])


def _pose(joints: np.ndarray, confidence: np.ndarray | None = None) -> Pose3D:
    t = len(joints)
    return Pose3D(joints=joints, frame="camera", fps=FPS, timestamps=np.arange(t) / FPS,
                  confidence=np.ones(t) if confidence is None else confidence,
                  trajectory=np.tile([0.0, 0.0, 4.0], (t, 1)))


def _slow_error(rng: np.random.Generator, t: int, size: float) -> np.ndarray:
    """Errors that drift over about a second, per joint (the pelvis has none: root-relative)."""
    knots = rng.normal(0, size, (t // 15 + 2, 17, 3))
    pos = np.arange(t) / 15
    i = pos.astype(int)
    w = (pos - i)[:, None, None]
    err = knots[i] * (1 - w) + knots[i + 1] * w
    err[:, 0] = 0
    return err


def _error(pose: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per frame, mean joint distance after the rotation about the pelvis that best aligns them."""
    out = np.empty(len(pose))
    for f in range(len(pose)):
        rot = Rotation.align_vectors(truth[f], pose[f])[0]
        out[f] = np.linalg.norm(rot.apply(pose[f]) - truth[f], axis=-1).mean()
    return out


def _shake(joints: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(joints, 2, axis=0), axis=-1).mean())


@pytest.fixture
def case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    t = 240
    truth = _truth(t)
    lifted = truth + _slow_error(rng, t, 0.04)
    # The detector's estimate: its own errors, shake from frame to frame, and its own orientation
    # (its world frame is not the camera's), turning from frame to frame.
    detector = truth + _slow_error(rng, t, 0.04) + rng.normal(0, 0.012, (t, 17, 3)) * (np.arange(17) > 0)[:, None]
    turn = Rotation.from_rotvec(rng.normal(0, 0.2, (t, 3)))
    detector = np.stack([turn[f].apply(detector[f]) for f in range(t)])
    return truth, lifted, detector


def test_the_blend_is_nearer_the_truth_than_either_and_adds_no_shake(case: tuple) -> None:
    truth, lifted, detector = case
    blended = blend_detector_3d(_pose(lifted), _pose(detector), 0.5)
    e_lifted, e_detector, e_blend = (_error(p, truth).mean() for p in (lifted, detector, blended.joints))
    assert e_blend < 0.85 * min(e_lifted, e_detector), (e_lifted, e_detector, e_blend)
    # The detector shakes; the blend does not shake more than the truth and the lifted pose do.
    assert _shake(detector) > 3 * _shake(lifted)
    assert _shake(blended.joints) < 1.2 * _shake(lifted)
    # The body keeps the lifted pose's orientation in the camera: unaligned, the blend is as near
    # the truth as aligned; the root path is untouched.
    unaligned = np.linalg.norm(blended.joints - truth, axis=-1).mean()
    assert unaligned < 1.1 * e_blend
    assert np.array_equal(blended.trajectory, _pose(lifted).trajectory)
    assert blended.meta["detector_3d_weight"] == 0.5
    # Weight 0 is the lifted pose as it is; weight 1 is the detector's (smoothed, turned the lifted way).
    assert np.array_equal(blend_detector_3d(_pose(lifted), _pose(detector), 0.0).joints, lifted)
    alone = blend_detector_3d(_pose(lifted), _pose(detector), 1.0).joints
    assert _error(alone, truth).mean() < e_detector


def test_frames_read_the_wrong_way_round_or_without_a_detection_keep_the_lifted_pose(case: tuple) -> None:
    truth, lifted, detector = case
    good = blend_detector_3d(_pose(lifted), _pose(detector), 0.5).joints
    # Frames 60-89: the detector read the body the wrong way round (tracking put its 2D labels
    # right afterwards); its 3D there is the mirrored body, which is not blended in.
    relabelled = np.zeros(len(truth), dtype=bool)
    relabelled[60:90] = True
    mirrored = detector.copy()
    mirrored[relabelled] = detector[relabelled][:, H36M17.flip_permutation()] * [-1, 1, 1]
    kept = blend_detector_3d(_pose(lifted), _pose(mirrored), 0.5, relabelled).joints
    blind = blend_detector_3d(_pose(lifted), _pose(mirrored), 0.5).joints
    assert np.array_equal(kept[60:90], lifted[60:90])
    assert np.allclose(kept[:40], good[:40]) and np.allclose(kept[110:], good[110:])
    assert _error(blind, truth)[65:85].mean() > 1.2 * _error(lifted, truth)[65:85].mean()
    # Frames where the detector found nobody (confidence 0, its joints filled in from neighbours)
    # keep the lifted pose, easing back in around them.
    confidence = np.ones(len(truth))
    confidence[120:150] = 0
    gap = blend_detector_3d(_pose(lifted), _pose(detector, confidence), 0.5).joints
    assert np.array_equal(gap[120:150], lifted[120:150])
    assert np.allclose(gap[:100], good[:100], atol=1e-3)
    step = np.linalg.norm(np.diff(gap[110:160], axis=0), axis=-1).max()
    assert step < 1.5 * np.linalg.norm(np.diff(lifted[110:160], axis=0), axis=-1).max()
    # Nothing at all from the detector: the lifted pose.
    assert np.array_equal(blend_detector_3d(_pose(lifted), _pose(detector, np.zeros(len(truth))), 0.5).joints,
                          lifted)
    with pytest.raises(ValueError, match="from 0 to 1"):
        blend_detector_3d(_pose(lifted), _pose(detector), 1.5)
    with pytest.raises(ValueError, match="frames of the detector"):
        blend_detector_3d(_pose(lifted), _pose(detector[:-1]), 0.5)
