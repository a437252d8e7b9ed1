"""Blending MediaPipe's own 3D into the lifted pose.

The temporal lifter and BlazePose's world landmarks estimate the same pose from the same video with
errors that are largely independent: the lifter reasons from the 2D track over 81 frames and was
trained on mocap, BlazePose from the image itself, one frame at a time. Their mean is closer to
the truth than either (measured on the 4-camera recording: ``benchmarks/multiview_accuracy.py``).
Per frame, BlazePose's pose is rotated onto the lifted one (Kabsch, about the pelvis: the lifted
pose keeps the body's orientation in the camera, which its trajectory and the 2D agree with), and
``weight`` of the difference between the two, joint by joint, is added to the lifted pose. BlazePose's
3D shakes from frame to frame (about 8x the lifter's frame-to-frame acceleration), so that
difference is smoothed over time first (a Gaussian of ``SMOOTH_SECONDS``): the motion itself comes
from the lifted pose and is not smeared, only BlazePose's shake is removed. Frames where BlazePose
found nobody, or read the body the wrong way round (its left/right labels were put right
afterwards), keep the lifted pose, with the weight eased in and out over the same time.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from converters.types import Pose3D

__all__ = ["DEFAULT_WEIGHT", "SMOOTH_SECONDS", "blend_detector_3d", "drop_frames"]

DEFAULT_WEIGHT = 0.5  # equal weights: the two are about as far from the reference (multiview_accuracy.py)
SMOOTH_SECONDS = 0.1  # Gaussian sigma of the difference: 3 frames at 30 fps


def _rotations(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Per frame, the rotation ``R (T,3,3)`` that best maps ``src (T,J,3)`` onto ``dst`` (both
    about the origin): ``dst ≈ src @ R.T``."""
    h = np.einsum("tji,tjk->tik", src, dst)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("tij,tjk->tik", u, vt)))
    fix = np.ones((len(src), 3))
    fix[:, 2] = np.where(d == 0, 1.0, d)
    return np.einsum("tji,tj,tkj->tik", vt, fix, u)


def drop_frames(pose: Pose3D, frames: np.ndarray | None) -> Pose3D:
    """``pose`` marked as not seen (confidence 0) in ``frames (T,)``: the frames whose left/right
    labels were put right after detection. There MediaPipe read the body the wrong way round, and
    its 3D is that wrong body (turned, its depth order reversed), not merely mislabelled: blending
    it, even relabelled, made the man of the 4-camera recording's cam02 1.4 degrees worse."""
    if frames is None or not frames.any():
        return pose
    return replace(pose, confidence=np.where(frames, 0.0, pose.confidence))


def blend_detector_3d(pose: Pose3D, detector: Pose3D, weight: float = DEFAULT_WEIGHT,
                      relabelled: np.ndarray | None = None) -> Pose3D:
    """``pose`` (the lifter's, root-relative camera space) with ``detector`` (BlazePose's world
    landmarks as H36M-17, same frames) blended in at ``weight``. ``relabelled (T,)``: frames whose
    left/right labels were put right after detection, where the detector's 3D is not used (see
    :func:`drop_frames`). ``detector.confidence`` 0 marks frames without a detection."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be from 0 to 1, got {weight}")
    t = pose.joints.shape[0]
    if detector.joints.shape[0] != t:
        raise ValueError(f"{detector.joints.shape[0]} frames of the detector's 3D for {t} lifted frames")
    lifted = pose.joints - pose.joints[:, :1]
    detector = drop_frames(detector, relabelled)
    other = detector.joints - detector.joints[:, :1]
    difference = np.einsum("tjk,tik->tji", other, _rotations(other, lifted)) - lifted
    seen = (detector.confidence > 0).astype(np.float64)
    sigma = SMOOTH_SECONDS * pose.fps
    if t > 1 and sigma > 0 and seen.any():  # a mean over the frames with a detection (normalised convolution)
        share = gaussian_filter1d(seen, sigma, mode="nearest")
        difference = gaussian_filter1d(difference * seen[:, None, None], sigma, axis=0, mode="nearest")
        difference /= np.maximum(share, 1e-6)[:, None, None]
        seen = np.minimum(seen, share)
    joints = pose.joints + weight * seen[:, None, None] * difference
    meta = dict(pose.meta, detector_3d_weight=weight)
    return replace(pose, joints=joints, meta=meta)
