"""Root trajectory consistent with the image (numpy and scipy).

The lifter's trajectory model guesses where the root is in camera space from the 2D alone. Two
things go wrong on real video: its depth wobbles (a dancer dancing on the spot travels metres
towards and away from the camera), and its image-plane travel need not match the 2D (a walker
covers about half the distance the 2D shows). Both have a better answer in the image itself:

1. For each frame, the root position ``(X, Y, Z)`` that best projects the lifted root-relative
   pose onto the 2D keypoints (pinhole camera, principal point at the image centre), weighted by
   the detector's scores. The equations ``u (Z + c) = f (X + a)`` and ``v (Z + c) = f (Y + b)``
   (``(a, b, c)`` a joint relative to the root, ``(u, v)`` its pixel offset from the centre) are
   linear in the root, so this is a small least-squares problem per frame. The focal length is
   unknown on real video; it only scales depth (the image-plane travel in metres, ``Z u / f``,
   does not depend on it), so it is chosen to keep the trajectory model's median depth.
2. Depth is smoothed hard (a median over ``depth_median_s`` then a Gaussian of ``depth_sigma_s``,
   on log depth): a person's distance changes slowly, while per-frame depth is the noisiest
   estimate. The image-plane direction of the root (``X/Z``, ``Y/Z``) follows the fit's slow
   part (the travel across the picture, as the 2D shows it) and the model's fast part (steadier
   frame to frame than a per-frame fit: the model sees a second of context).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from converters.joints import COCO17, H36M17

__all__ = ["TrajectoryCleaning", "clean_trajectory", "fit_root"]

# Joints both skeletons place at the same anatomical point (near enough for scale and position).
_SHARED = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
           "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
_IN_2D = np.array([COCO17.index(n) for n in _SHARED])
_IN_3D = np.array([H36M17.index(n) for n in _SHARED])


@dataclass(frozen=True)
class TrajectoryCleaning:
    depth_median_s: float = 0.3
    depth_sigma_s: float = 0.4
    ratio_sigma_s: float = 0.15
    min_weight: float = 0.2  # keypoints scored lower than this do not count


def fit_root(joints: np.ndarray, xy: np.ndarray, weights: np.ndarray, focal: float,
             centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the camera-space root ``(T,3)`` that best projects root-relative ``joints (T,17,3)``
    (H36M-17) onto COCO-17 pixels ``xy (T,17,2)`` with ``weights (T,17)``, and whether the frame
    had enough keypoints (``(T,)`` bool; at least 4 with weight). Frames without enough are NaN."""
    p = joints[:, _IN_3D]  # (T,12,3)
    u = xy[:, _IN_2D, 0] - centre[0]
    v = xy[:, _IN_2D, 1] - centre[1]
    w = np.sqrt(np.maximum(weights[:, _IN_2D], 0.0))
    t, n = u.shape
    a = np.zeros((t, 2 * n, 3))
    b = np.zeros((t, 2 * n))
    a[:, :n, 0], a[:, :n, 2], b[:, :n] = focal, -u, u * p[..., 2] - focal * p[..., 0]
    a[:, n:, 1], a[:, n:, 2], b[:, n:] = focal, -v, v * p[..., 2] - focal * p[..., 1]
    ww = np.concatenate([w, w], axis=1)
    a, b = a * ww[..., None], b * ww
    ok = (weights[:, _IN_2D] > 0).sum(axis=1) >= 4
    normal = np.einsum("tki,tkj->tij", a, a) + 1e-9 * np.eye(3)
    rhs = np.einsum("tki,tk->ti", a, b)
    root = np.full((t, 3), np.nan)
    if ok.any():
        root[ok] = np.linalg.solve(normal[ok], rhs[ok][..., None])[..., 0]
    ok &= np.isfinite(root).all(axis=1) & (root[:, 2] > 0.1)
    root[~ok] = np.nan
    return root, ok


def clean_trajectory(joints: np.ndarray, trajectory: np.ndarray, xy: np.ndarray, scores: np.ndarray,
                     image_size: tuple[int, int], fps: float, settings: TrajectoryCleaning | None = None,
                     turning: bool = False) -> tuple[np.ndarray, dict[str, float]] | None:
    """A trajectory ``(T,3)`` for root-relative camera-space ``joints (T,17,3)`` that agrees with the
    2D ``xy (T,17,2)`` (COCO-17 pixels, ``scores (T,17)``), with the model's ``trajectory (T,3)``
    giving the depth scale; and figures for the metadata. None when too few frames have keypoints
    to say anything (the model's trajectory then stands). ``turning``: the camera turned and ``xy``
    is where the first frame's camera saw the keypoints (:func:`vp3d_engine.lifting.lift_keypoints`):
    the directions are the picture's alone, lightly smoothed (the model's steadier fast part saw
    the turning camera's picture, not the first frame's)."""
    s = settings or TrajectoryCleaning()
    weights = np.where(scores >= s.min_weight, scores, 0.0)
    centre = (image_size[0] / 2.0, image_size[1] / 2.0)
    nominal = float(max(image_size))  # about a 53 degree field of view along the long side
    root, ok = fit_root(joints, xy, weights, nominal, centre)
    if ok.sum() < max(2, 0.5 * len(ok)) or not np.isfinite(trajectory).all() or (trajectory[:, 2] <= 0).any():
        return None
    # Depth scales with the focal length: choose it so the median depth is the model's.
    focal = nominal * float(np.median(trajectory[ok, 2]) / np.median(root[ok, 2]))
    root, ok = fit_root(joints, xy, weights, focal, centre)
    frames = np.arange(len(root))
    ratio = root[:, :2] / root[:, 2:3]  # where the root is in the picture, X/Z and Y/Z
    log_depth = np.log(root[:, 2])
    for column in (ratio[:, 0], ratio[:, 1], log_depth):  # frames without keypoints: in between
        column[~ok] = np.interp(frames[~ok], frames[ok], column[ok])
    depth = np.exp(_smooth_hard(log_depth, fps, s))
    # The model's own image-plane path is steadier frame to frame (it sees a second of context);
    # keep its fast part and take the slow part, the travel, from the fit.
    model_ratio = trajectory[:, :2] / trajectory[:, 2:3]
    sigma = max(s.ratio_sigma_s * fps, 1e-3)
    if not turning:
        ratio = model_ratio + gaussian_filter1d(ratio - model_ratio, sigma=sigma, axis=0, mode="nearest")
    else:  # a turning camera: the picture's own directions (the model's fast part would follow the turns)
        ratio = gaussian_filter1d(ratio, sigma=max(0.03 * fps, 1e-3), axis=0, mode="nearest")
    cleaned = np.concatenate([ratio * depth[:, None], depth[:, None]], axis=1)
    figures = {"focal_px": round(focal, 1), "depth_range_model_m": round(float(np.ptp(trajectory[:, 2])), 3),
               "depth_range_m": round(float(np.ptp(depth)), 3)}
    return cleaned, figures


def _smooth_hard(values: np.ndarray, fps: float, s: TrajectoryCleaning) -> np.ndarray:
    size = max(1, round(s.depth_median_s * fps)) | 1
    out = median_filter(values, size=size, mode="nearest") if len(values) >= size else values
    return np.asarray(gaussian_filter1d(out, sigma=max(s.depth_sigma_s * fps, 1e-3), mode="nearest"))
