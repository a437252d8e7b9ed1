"""Pose error metrics (numpy). Inputs are ``(..., J, 3)`` arrays in metres; results in metres.

- MPJPE (protocol 1): mean Euclidean joint error.
- P-MPJPE (protocol 2): per frame, after the similarity transform (rotation, scale,
  translation) that best aligns the prediction to the truth (Procrustes).
- N-MPJPE: per frame, after the best scale only.
- MPJVE: mean error of the per-frame joint velocities (first differences along axis 0).
"""

from __future__ import annotations

import numpy as np

__all__ = ["WORLD_METRICS", "mpjpe", "mpjve", "n_mpjpe", "p_mpjpe", "per_frame_mpjpe", "world_motion_metrics"]


def per_frame_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    scale = (pred * gt).sum(axis=(-1, -2), keepdims=True) / np.maximum(
        (pred * pred).sum(axis=(-1, -2), keepdims=True), 1e-12)
    return mpjpe(scale * pred, gt)


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    mu_p = pred.mean(axis=-2, keepdims=True)
    mu_g = gt.mean(axis=-2, keepdims=True)
    x, y = pred - mu_p, gt - mu_g
    nx = np.maximum(np.sqrt((x**2).sum(axis=(-1, -2), keepdims=True)), 1e-12)
    ny = np.maximum(np.sqrt((y**2).sum(axis=(-1, -2), keepdims=True)), 1e-12)
    x, y = x / nx, y / ny
    u, s, vt = np.linalg.svd(np.swapaxes(x, -1, -2) @ y)
    # Proper rotation only: flip the last singular vector where the determinant is negative.
    sign = np.sign(np.linalg.det(u @ vt))[..., None]
    vt[..., -1, :] *= sign
    s[..., -1] *= sign[..., 0]
    r = u @ vt
    a = s.sum(axis=-1)[..., None, None] * ny / nx
    aligned = a * (pred - mu_p) @ r + mu_g
    return mpjpe(aligned, gt)


def mpjve(pred: np.ndarray, gt: np.ndarray) -> float:
    if pred.shape[0] < 2:
        return 0.0
    return mpjpe(np.diff(pred, axis=0), np.diff(gt, axis=0))


# --- World-space motion (Y up, metres; the prediction's floor at y = 0) -----------------------

WORLD_METRICS = ("world_mpjpe_mm", "root_drift_mm", "foot_skating_mm", "foot_skating_truth_mm", "penetration_mm",
                 "penetration_share", "jitter_mm", "jitter_truth_mm", "jitter_ratio")


def _yaw_alignment(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The turn about Y and the translation that best map points ``source (N,3)`` onto ``target``
    (least squares; no scale, no tilt: both are upright)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    # maximise sum t . R s over rotations about Y: angle from the xz cross and dot products
    angle = np.arctan2(np.sum(s[:, 2] * t[:, 0] - s[:, 0] * t[:, 2]), np.sum(s[:, 0] * t[:, 0] + s[:, 2] * t[:, 2]))
    c, si = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, 0.0, si], [0.0, 1.0, 0.0], [-si, 0.0, c]])
    return rotation, mu_t - mu_s @ rotation.T


def world_motion_metrics(pred: np.ndarray, truth: np.ndarray, truth_contacts: np.ndarray, ankles: tuple[int, int],
                         ankle_height: float) -> dict[str, float]:
    """Figures of world joints ``pred (T,J,3)`` against ``truth (T,J,3)`` (the same frames, any
    upright world frame: the truth is turned and moved onto the prediction), with the truth's foot
    contacts ``(T,2)`` for the ``ankles`` joint indices:

    - ``world_mpjpe_mm``: joint error after one turn about Y and one translation for the clip;
    - ``root_drift_mm``: root error after aligning the first frame (its pose's turn and its root);
    - ``foot_skating_mm``: mean horizontal movement per frame of a foot while the truth has it
      planted (``foot_skating_truth_mm``: the truth's own, for scale);
    - ``penetration_mm`` and ``penetration_share``: how far the lower ankle is below
      ``ankle_height`` on frames where it is, and the share of such frames;
    - ``jitter_mm``: mean joint acceleration (mm per frame squared; ``jitter_truth_mm`` the
      truth's) and ``jitter_ratio``, the one over the other (pool the two means over clips before
      dividing: a clip of someone standing still has almost no acceleration to divide by).
    """
    rotation, shift = _yaw_alignment(truth.reshape(-1, 3), pred.reshape(-1, 3))
    aligned = truth @ rotation.T + shift
    first, _ = _yaw_alignment(truth[0], pred[0])
    start = truth @ first.T
    start = start + (pred[0, 0] - start[0, 0])
    feet = list(ankles)
    planted = truth_contacts[1:] & truth_contacts[:-1]

    def skating(joints: np.ndarray) -> float:
        step = np.linalg.norm(np.diff(joints[:, feet][..., [0, 2]], axis=0), axis=-1)
        return float(step[planted].mean() * 1000) if planted.any() else float("nan")

    depth = np.maximum(ankle_height - pred[:, feet, 1].min(axis=1), 0.0)
    below = depth > 1e-4  # a tenth of a millimetre: not rounding

    def acceleration(joints: np.ndarray) -> float:
        return float(np.linalg.norm(joints[2:] - 2 * joints[1:-1] + joints[:-2], axis=-1).mean()) if len(joints) > 2 \
            else 0.0

    truth_acc, pred_acc = acceleration(truth), acceleration(pred)
    return {
        "world_mpjpe_mm": mpjpe(pred, aligned) * 1000,
        "root_drift_mm": float(np.linalg.norm(pred[:, 0] - start[:, 0], axis=-1).mean() * 1000),
        "foot_skating_mm": skating(pred),
        "foot_skating_truth_mm": skating(truth),
        "penetration_mm": float(depth[below].mean() * 1000) if below.any() else 0.0,
        "penetration_share": float(below.mean()),
        "jitter_mm": pred_acc * 1000,
        "jitter_truth_mm": truth_acc * 1000,
        "jitter_ratio": pred_acc / truth_acc if truth_acc > 0 else float("nan"),
    }
