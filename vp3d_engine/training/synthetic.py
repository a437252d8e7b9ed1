"""Synthetic cameras and a 2D detector noise model, for training the lifter on mocap.

Cameras follow VideoPose3D's convention: camera space is x right, y down, z forward; a world
point ``p`` (Y up, metres) maps to ``R @ (p - C)``, then to pixels ``f * (x, y) / z + c``.
Ranges cover phone and webcam footage of a whole person (see :class:`CameraRanges`).

The noise model imitates a 2D detector on real video: per-joint Gaussian jitter proportional to
the person's size in pixels (larger for wrists and ankles), a slow drift on top of it, occasional
outliers, left/right confusions, and missing joints (held at their last seen position, as a
tracker does), with a confidence score that falls with the error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import convolve1d

from converters.joints import COCO17

__all__ = [
    "CameraRanges",
    "Cameras",
    "NoiseModel",
    "project",
    "sample_cameras",
    "world_to_camera",
]


@dataclass(frozen=True)
class CameraRanges:
    """Ranges synthetic cameras are drawn from (angles in degrees, lengths in metres)."""

    yaw_deg: tuple[float, float] = (0.0, 360.0)
    pitch_deg: tuple[float, float] = (-10.0, 35.0)
    roll_std_deg: float = 3.0
    distance_m: tuple[float, float] = (2.5, 9.0)
    look_at_height_m: tuple[float, float] = (0.4, 1.4)
    horizontal_fov_deg: tuple[float, float] = (40.0, 80.0)
    off_centre: float = 0.35
    min_depth_m: float = 1.5
    image_sizes: tuple[tuple[int, int], ...] = (
        (1920, 1080), (1080, 1920), (1280, 720), (720, 1280), (640, 480), (480, 640),
        (854, 480), (480, 854), (1080, 1080), (640, 360),
    )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Cameras:
    """A batch of ``n`` pinhole cameras: ``R (n,3,3)`` world-to-camera, centres ``C (n,3)``,
    focal length ``f (n,)`` and principal point ``c (n,2)`` in pixels, ``size (n,2)`` (w, h)."""

    R: np.ndarray
    C: np.ndarray
    f: np.ndarray
    c: np.ndarray
    size: np.ndarray


def _rot_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (n,3,3) about unit axes (n,3) by angles (n,), Rodrigues' formula."""
    k = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    kx = np.zeros(k.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2] = -k[..., 2], k[..., 1]
    kx[..., 1, 0], kx[..., 1, 2] = k[..., 2], -k[..., 0]
    kx[..., 2, 0], kx[..., 2, 1] = -k[..., 1], k[..., 0]
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def sample_cameras(rng: np.random.Generator, subject: np.ndarray, ranges: CameraRanges) -> Cameras:
    """One camera per row of ``subject (n,T,3)`` (root positions over each window): aimed near
    the subject at the window's centre, then pulled back so every frame stays ``min_depth_m`` in
    front of it."""
    n = subject.shape[0]
    centre = subject[:, subject.shape[1] // 2].astype(np.float64)
    yaw = np.radians(rng.uniform(*ranges.yaw_deg, n))
    pitch = np.radians(rng.uniform(*ranges.pitch_deg, n))
    lo, hi = np.log(ranges.distance_m)
    dist = np.exp(rng.uniform(lo, hi, n))
    hfov = np.radians(rng.uniform(*ranges.horizontal_fov_deg, n))
    sizes = np.asarray(ranges.image_sizes, dtype=np.float64)[rng.integers(len(ranges.image_sizes), size=n)]

    target = centre.copy()
    target[:, 1] = rng.uniform(*ranges.look_at_height_m, n)
    # Viewing direction from yaw (around Y) and pitch (positive looks down).
    forward = np.stack([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)], axis=-1)
    up = np.array([0.0, 1.0, 0.0])
    x_c = np.cross(forward, up)
    x_c /= np.linalg.norm(x_c, axis=-1, keepdims=True)
    y_c = np.cross(forward, x_c)
    R = np.stack([x_c, y_c, forward], axis=1)
    # Aim off-centre (the subject is not always in the middle of the picture) and roll a little.
    f = sizes[:, 0] / 2 / np.tan(hfov / 2)
    vfov = 2 * np.arctan(sizes[:, 1] / 2 / f)
    dx = rng.uniform(-1, 1, n) * ranges.off_centre * hfov / 2
    dy = rng.uniform(-1, 1, n) * ranges.off_centre * vfov / 2
    roll = np.radians(rng.normal(0.0, ranges.roll_std_deg, n))
    turn = _rot_about(np.broadcast_to([0.0, 1.0, 0.0], (n, 3)), dx) @ _rot_about(
        np.broadcast_to([1.0, 0.0, 0.0], (n, 3)), dy) @ _rot_about(np.broadcast_to([0.0, 0.0, 1.0], (n, 3)), roll)
    R = turn @ R
    C = target - dist[:, None] * forward
    # Pull the camera back along its optical axis until the whole window is in front of it.
    depth = np.einsum("nk,ntk->nt", R[:, 2], subject - C[:, None])
    pull = np.maximum(ranges.min_depth_m - depth.min(axis=1), 0.0)
    C = C - pull[:, None] * R[:, 2]
    c = sizes / 2 + rng.normal(0.0, 0.01, (n, 2)) * sizes
    return Cameras(R=R, C=C, f=f, c=c, size=sizes)


def world_to_camera(points: np.ndarray, cams: Cameras) -> np.ndarray:
    """World points ``(n,...,3)`` to camera space ``(n,...,3)``."""
    flat = points.reshape(points.shape[0], -1, 3) - cams.C[:, None]
    return np.einsum("nab,npb->npa", cams.R, flat).reshape(points.shape)


def project(points_cam: np.ndarray, cams: Cameras) -> np.ndarray:
    """Camera-space points ``(n,...,3)`` to pixels ``(n,...,2)``."""
    shape = points_cam.shape
    p = points_cam.reshape(shape[0], -1, 3)
    z = np.maximum(p[..., 2:], 1e-6)
    uv = p[..., :2] / z * cams.f[:, None, None] + cams.c[:, None]
    return uv.reshape(shape[:-1] + (2,))


# Per-joint jitter as a fraction of the person's height in pixels, in COCO-17 order; face
# points are found more precisely than wrists and ankles. Figures chosen to give a median error
# near 1.5% of body height at level 1, about what CPN and BlazePose reach on clear footage.
_JITTER = np.array([0.008, 0.009, 0.009, 0.010, 0.010, 0.012, 0.012, 0.016, 0.016,
                    0.021, 0.021, 0.018, 0.018, 0.016, 0.016, 0.019, 0.019])


@dataclass(frozen=True)
class NoiseModel:
    """Detector-like noise; ``level`` scales every term and is drawn per window from
    ``level_range`` (log-uniform); ``clean_fraction`` of windows get none."""

    level_range: tuple[float, float] = (0.3, 2.0)
    clean_fraction: float = 0.1
    drift: float = 0.6
    outlier_rate: float = 0.004
    outlier_size: tuple[float, float] = (0.05, 0.25)
    swap_rate: float = 0.002
    missing_rate: float = 0.01
    jitter: tuple[float, ...] = field(default_factory=lambda: tuple(_JITTER.tolist()))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def apply(self, rng: np.random.Generator, xy: np.ndarray,
              level: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noisy copy of COCO-17 pixels ``xy (n,T,17,2)``; returns ``(xy, score (n,T,17),
        valid (n,T,17))``."""
        n, t, k, _ = xy.shape
        if level is None:
            lo, hi = np.log(self.level_range)
            level = np.exp(rng.uniform(lo, hi, n))
            level[rng.random(n) < self.clean_fraction] = 0.0
        height = np.ptp(xy[..., 1], axis=-1).max(axis=1)  # (n,) person height in px over the window
        width = np.ptp(xy[..., 0], axis=-1).max(axis=1)
        size = np.maximum(np.maximum(height, 0.5 * width), 1.0)
        sigma = (level * size)[:, None, None, None] * np.asarray(self.jitter)[None, None, :, None]
        white = rng.normal(size=xy.shape)
        # Drift: white noise low-passed over about a third of a second, rescaled to unit variance.
        slow = rng.normal(size=xy.shape)
        kernel = np.hanning(11)
        kernel /= np.sqrt((kernel**2).sum())
        slow = convolve1d(slow, kernel, axis=1, mode="nearest")
        out = xy + sigma * (white + self.drift * slow)

        lvl = level[:, None, None]
        outlier = rng.random((n, t, k)) < self.outlier_rate * lvl
        jump = rng.uniform(*self.outlier_size, (n, t, k))[..., None] * size[:, None, None, None]
        angle = rng.uniform(0, 2 * np.pi, (n, t, k))
        out += outlier[..., None] * jump * np.stack([np.cos(angle), np.sin(angle)], axis=-1)

        swap = rng.random((n, t, len(COCO17.left))) < self.swap_rate * level[:, None, None]
        left, right = np.asarray(COCO17.left), np.asarray(COCO17.right)
        lv, rv = out[:, :, left].copy(), out[:, :, right].copy()
        out[:, :, left] = np.where(swap[..., None], rv, lv)
        out[:, :, right] = np.where(swap[..., None], lv, rv)

        err = np.linalg.norm(out - xy, axis=-1) / size[:, None, None]
        score = np.clip(np.exp(-((err / 0.04) ** 2)) * rng.uniform(0.85, 1.0, err.shape), 0.0, 1.0)
        valid = rng.random((n, t, k)) >= self.missing_rate * lvl
        valid[:, 0] = True
        score = np.where(valid, score, 0.0)
        if not valid.all():
            # Hold a missing joint at its last valid position (what a tracker hands on).
            idx = np.where(valid, np.arange(t)[None, :, None], 0)
            np.maximum.accumulate(idx, axis=1, out=idx)
            out = np.take_along_axis(out, idx[..., None], axis=1)
        return out, score, valid
