"""Pose error metrics (numpy). Inputs are ``(..., J, 3)`` arrays in metres; results in metres.

- MPJPE (protocol 1): mean Euclidean joint error.
- P-MPJPE (protocol 2): per frame, after the similarity transform (rotation, scale,
  translation) that best aligns the prediction to the truth (Procrustes).
- N-MPJPE: per frame, after the best scale only.
- MPJVE: mean error of the per-frame joint velocities (first differences along axis 0).
"""

from __future__ import annotations

import numpy as np

__all__ = ["mpjpe", "mpjve", "n_mpjpe", "p_mpjpe", "per_frame_mpjpe"]


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
