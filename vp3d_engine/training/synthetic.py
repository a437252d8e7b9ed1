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

from converters.joints import COCO17

__all__ = [
    "BodyShape",
    "CameraRanges",
    "Cameras",
    "NoiseModel",
    "project",
    "project_world",
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
    # Field of view across the image's long side, as phone makers quote it: a portrait phone clip
    # (1080x1920 at 65 degrees) is about 38 degrees across.
    long_side_fov_deg: tuple[float, float] = (40.0, 80.0)
    off_centre: float = 0.35
    min_depth_m: float = 1.5
    frame_margin: float = 0.03
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


def sample_cameras(rng: np.random.Generator, subject: np.ndarray, ranges: CameraRanges,
                   keep_in_frame: np.ndarray | None = None) -> Cameras:
    """One camera per row of ``subject (n,T,3)`` (root positions over each window): aimed near
    the subject at the window's centre, then pulled back along its optical axis just enough that
    every frame stays ``min_depth_m`` in front of it and every point of ``keep_in_frame (n,P,3)``
    (default: the roots) projects inside the image, ``frame_margin`` from its edges; as a
    videographer frames the whole action."""
    n = subject.shape[0]
    centre = subject[:, subject.shape[1] // 2].astype(np.float64)
    yaw = np.radians(rng.uniform(*ranges.yaw_deg, n))
    pitch = np.radians(rng.uniform(*ranges.pitch_deg, n))
    lo, hi = np.log(ranges.distance_m)
    dist = np.exp(rng.uniform(lo, hi, n))
    fov = np.radians(rng.uniform(*ranges.long_side_fov_deg, n))
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
    f = sizes.max(axis=1) / 2 / np.tan(fov / 2)
    hfov = 2 * np.arctan(sizes[:, 0] / 2 / f)
    vfov = 2 * np.arctan(sizes[:, 1] / 2 / f)
    dx = rng.uniform(-1, 1, n) * ranges.off_centre * hfov / 2
    dy = rng.uniform(-1, 1, n) * ranges.off_centre * vfov / 2
    roll = np.radians(rng.normal(0.0, ranges.roll_std_deg, n))
    turn = _rot_about(np.broadcast_to([0.0, 1.0, 0.0], (n, 3)), dx) @ _rot_about(
        np.broadcast_to([1.0, 0.0, 0.0], (n, 3)), dy) @ _rot_about(np.broadcast_to([0.0, 0.0, 1.0], (n, 3)), roll)
    R = turn @ R
    C = target - dist[:, None] * forward
    c = sizes / 2 + rng.normal(0.0, 0.01, (n, 2)) * sizes
    # Moving back by d along the optical axis adds d to every depth and leaves x, y alone, so the
    # depth each point needs to land inside the image has a closed form.
    pts = (subject if keep_in_frame is None else keep_in_frame).astype(np.float64) - C[:, None]
    x, y, z = (np.einsum("nk,npk->np", R[:, i], pts) for i in range(3))
    margin = ranges.frame_margin * sizes
    lo = c - margin  # room left of / above the principal point, pixels
    hi = sizes - margin - c  # room right of / below it
    need_x = f[:, None] * np.where(x > 0, x / hi[:, 0:1], -x / lo[:, 0:1])
    need_y = f[:, None] * np.where(y > 0, y / hi[:, 1:2], -y / lo[:, 1:2])
    need = np.maximum(np.maximum(need_x, need_y), ranges.min_depth_m)
    pull = np.maximum((need - z).max(axis=1), 0.0)
    C = C - pull[:, None] * R[:, 2]
    return Cameras(R=R, C=C, f=f, c=c, size=sizes)


def world_to_camera(points: np.ndarray, cams: Cameras) -> np.ndarray:
    """World points ``(n,...,3)`` to camera space ``(n,...,3)``, in the points' dtype."""
    flat = points.reshape(points.shape[0], -1, 3) - cams.C[:, None].astype(points.dtype)
    r = cams.R.astype(points.dtype)
    # Three broadcast multiply-adds: much faster than einsum/matmul for 3x3 on long arrays.
    out = flat[..., 0:1] * r[:, None, :, 0] + flat[..., 1:2] * r[:, None, :, 1] + flat[..., 2:3] * r[:, None, :, 2]
    return out.reshape(points.shape)


def project(points_cam: np.ndarray, cams: Cameras) -> np.ndarray:
    """Camera-space points ``(n,...,3)`` to pixels ``(n,...,2)``."""
    shape = points_cam.shape
    p = points_cam.reshape(shape[0], -1, 3)
    z = np.maximum(p[..., 2:], 1e-6)
    dtype = points_cam.dtype
    uv = p[..., :2] / z * cams.f[:, None, None].astype(dtype) + cams.c[:, None].astype(dtype)
    return uv.reshape((*shape[:-1], 2))


def project_world(points: np.ndarray, cams: Cameras) -> np.ndarray:
    """World points ``(n,...,3)`` straight to pixels ``(n,...,2)``: the same as
    ``project(world_to_camera(points))`` but one coordinate plane at a time, which on long
    windows is several times faster than going through ``(n,P,3)`` temporaries."""
    shape = points.shape
    dtype = points.dtype
    p = points.reshape(shape[0], -1, 3)
    c = cams.C.astype(dtype)[:, :, None]
    r = cams.R.astype(dtype)[:, :, :, None]
    d = [p[..., i] - c[:, i] for i in range(3)]
    cam = [r[:, row, 0] * d[0] + r[:, row, 1] * d[1] + r[:, row, 2] * d[2] for row in range(3)]
    scale = cams.f.astype(dtype)[:, None] / np.maximum(cam[2], 1e-6)
    centre = cams.c.astype(dtype)
    uv = np.stack([cam[0] * scale + centre[:, 0:1], cam[1] * scale + centre[:, 1:2]], axis=-1)
    return uv.reshape((*shape[:-1], 2))


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
        valid (n,T,17))`` in ``xy``'s dtype. Rare events (outliers, swaps, missing joints) are
        drawn sparsely, so the cost is a few passes over the array."""
        n, t, k, _ = xy.shape
        dtype = xy.dtype
        if level is None:
            lo, hi = np.log(self.level_range)
            level = np.exp(rng.uniform(lo, hi, n))
            level[rng.random(n) < self.clean_fraction] = 0.0
        height = np.ptp(xy[..., 1], axis=-1).max(axis=1)  # (n,) person height in px over the window
        width = np.ptp(xy[..., 0], axis=-1).max(axis=1)
        size = np.maximum(np.maximum(height, 0.5 * width), 1.0)
        sigma = ((level * size)[:, None, None, None] * np.asarray(self.jitter)[None, None, :, None]).astype(dtype)
        # Drift: unit-variance noise on a coarse grid (every 8 frames), linearly interpolated.
        step = 8
        coarse = rng.standard_normal((n, t // step + 2, k, 2), dtype=np.float32).astype(dtype, copy=False)
        pos = np.arange(t) / step
        i0 = pos.astype(np.int64)
        w = (pos - i0).astype(dtype)[None, :, None, None]
        slow = (coarse[:, i0] * (1 - w) + coarse[:, i0 + 1] * w) / np.sqrt(np.mean((1 - w) ** 2 + w**2))
        noise = rng.standard_normal(xy.shape, dtype=np.float32).astype(dtype, copy=False)
        noise += self.drift * slow
        out = xy + sigma * noise

        def sparse(rate: float, per_sample: int) -> tuple[np.ndarray, np.ndarray]:
            """(sample, flat index) of events with probability ``rate * level`` each."""
            counts = rng.binomial(per_sample, np.clip(rate * level, 0.0, 1.0))
            return np.repeat(np.arange(n), counts), rng.integers(0, per_sample, counts.sum())

        ids, flat = sparse(self.outlier_rate, t * k)
        if ids.size:
            jump = rng.uniform(*self.outlier_size, ids.size) * size[ids]
            angle = rng.uniform(0, 2 * np.pi, ids.size)
            ft, fk = np.divmod(flat, k)
            out[ids, ft, fk] += (jump[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)).astype(dtype)

        pairs = len(COCO17.left)
        ids, flat = sparse(self.swap_rate, t * pairs)
        if ids.size:
            ft, fp = np.divmod(flat, pairs)
            left, right = np.asarray(COCO17.left)[fp], np.asarray(COCO17.right)[fp]
            lv = out[ids, ft, left].copy()
            out[ids, ft, left] = out[ids, ft, right]
            out[ids, ft, right] = lv

        err = np.sqrt(((out - xy) ** 2).sum(axis=-1)) / size[:, None, None].astype(dtype)
        score = np.exp(-((err / 0.04) ** 2)) * rng.uniform(0.85, 1.0, err.shape).astype(dtype)
        valid = np.ones((n, t, k), dtype=bool)
        ids, flat = sparse(self.missing_rate, t * k)
        if ids.size:
            ft, fk = np.divmod(flat, k)
            keep = ft > 0  # the first frame is always seen, so there is something to hold
            ids, ft, fk = ids[keep], ft[keep], fk[keep]
            valid[ids, ft, fk] = False
            score[ids, ft, fk] = 0.0
            # Hold a missing joint at its last valid position (what a tracker hands on); frames in
            # order, so runs of missing frames carry the last seen value forward.
            order = np.argsort(ft, kind="stable")
            ids, ft, fk = ids[order], ft[order], fk[order]
            bounds = np.flatnonzero(np.diff(ft)) + 1
            for a, b in zip(np.r_[0, bounds], np.r_[bounds, ft.size], strict=True):
                out[ids[a:b], ft[a:b], fk[a:b]] = out[ids[a:b], ft[a:b] - 1, fk[a:b]]
        return out, score, valid


# Joint indices the body-shape change needs, in H36M-17 and COCO-17 order.
_H36M_LEGS = ((1, 2, 3), (4, 5, 6))  # hip, knee, ankle (right, left)
_H36M_ARMS = ((14, 15, 16), (11, 12, 13))  # shoulder, elbow, wrist (right, left)
_H36M_HEAD = (9, 10)
_COCO_LEGS = ((12, 14, 16), (11, 13, 15))
_COCO_ARMS = ((6, 8, 10), (5, 7, 9))
_COCO_HEAD = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class BodyShape:
    """Random body proportions per training window, for the 2D input's points and the 3D target
    alike, so the lifter meets people built unlike the mocap actors (scales drawn log-uniformly
    from each range, relative to the mocap skeleton; each limb segment gets its own extra
    ``segment`` spread), plus where the detector puts the ears (input only).

    The ranges come from measurement: MediaPipe's keypoints triangulated from four real cameras
    (``benchmarks/multiview_accuracy.py``) give, relative to the hip-to-shoulder distance,
    shoulders 1.3x, hips 1.2x, legs 0.7x and arms 0.85x what the mocap skeletons have, and ears
    half as far apart; the ranges hold those with room on both sides and keep 1.0 inside."""

    probability: float = 0.8
    torso: tuple[float, float] = (0.9, 1.5)
    shoulder_width: tuple[float, float] = (0.9, 2.0)
    hip_width: tuple[float, float] = (0.9, 1.8)
    arms: tuple[float, float] = (0.85, 1.3)
    legs: tuple[float, float] = (0.85, 1.15)
    head: tuple[float, float] = (0.9, 1.4)
    segment: float = 0.05
    ear_width: tuple[float, float] = (0.5, 1.1)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Scales ``(n,)`` per part; windows not reshaped (``1 - probability`` of them) get ones."""

        def draw(span: tuple[float, float]) -> np.ndarray:
            lo, hi = np.log(span)
            return np.exp(rng.uniform(lo, hi, n))

        keep = rng.random(n) >= self.probability
        out = {"torso": draw(self.torso), "shoulder_width": draw(self.shoulder_width),
               "hip_width": draw(self.hip_width), "head": draw(self.head), "ear_width": draw(self.ear_width)}
        arms, legs = draw(self.arms), draw(self.legs)
        seg = np.log1p(self.segment)
        for name, base in (("upper_arm", arms), ("forearm", arms), ("thigh", legs), ("shin", legs)):
            out[name] = base * np.exp(rng.uniform(-seg, seg, n))
        for v in out.values():
            v[keep] = 1.0
        return out

    def apply(self, h36m: np.ndarray, coco: np.ndarray, scales: dict[str, np.ndarray],
              frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reshaped copies of ``h36m (n,T,17,3)`` and ``coco (n,T,17,3)`` (world metres, the same
        frames): the pelvis stays, the torso stretches along pelvis-to-thorax, shoulders and hips
        move out from their centres with the limbs attached, limb segments scale along themselves.
        The H36M pelvis and thorax are the frame for both sets. ``frames``: reshape and return
        only these frames of ``h36m`` (the training targets; COCO keeps all ``T``)."""
        pelvis, thorax = h36m[:, :, 0], h36m[:, :, 8]
        torso = scales["torso"].astype(h36m.dtype)[:, None, None]
        new_thorax = thorax + (torso - 1) * (thorax - pelvis)  # (n,T,3)
        pick = slice(None) if frames is None else frames
        h_new = self._reshape(h36m[:, pick], pelvis[:, pick], thorax[:, pick], new_thorax[:, pick], scales,
                              _H36M_LEGS, _H36M_ARMS, _H36M_HEAD)
        h_new[7] = pelvis[:, pick] + torso * (h36m[:, pick, 7] - pelvis[:, pick])  # spine
        h_new[8] = new_thorax[:, pick]
        c_new = self._reshape(coco, pelvis, thorax, new_thorax, scales, _COCO_LEGS, _COCO_ARMS, _COCO_HEAD)
        mid = 0.5 * (c_new[3] + c_new[4])
        ear = scales["ear_width"].astype(coco.dtype)[:, None, None]
        c_new[3], c_new[4] = mid + ear * (c_new[3] - mid), mid + ear * (c_new[4] - mid)
        return np.moveaxis(h_new, 0, 2), np.moveaxis(c_new, 0, 2)

    @staticmethod
    def _reshape(pts: np.ndarray, pelvis: np.ndarray, thorax: np.ndarray, new_thorax: np.ndarray,
                 scales: dict[str, np.ndarray], legs: tuple[tuple[int, int, int], ...],
                 arms: tuple[tuple[int, int, int], ...], head: tuple[int, ...]) -> np.ndarray:
        """Legs, arms and head of one point set ``(n,T,J,3)``, returned joint-major ``(J,n,T,3)``
        (each joint contiguous: a third of the time of working on strided joint slices)."""

        def col(name: str) -> np.ndarray:
            return scales[name].astype(pts.dtype)[:, None, None]

        src = np.ascontiguousarray(np.moveaxis(pts, 2, 0))
        new = src.copy()
        for hip, knee, ankle in legs:
            h = pelvis + col("hip_width") * (src[hip] - pelvis)
            k = h + col("thigh") * (src[knee] - src[hip])
            new[hip], new[knee] = h, k
            new[ankle] = k + col("shin") * (src[ankle] - src[knee])
        for shoulder, elbow, wrist in arms:
            s = new_thorax + col("shoulder_width") * (src[shoulder] - thorax)
            e = s + col("upper_arm") * (src[elbow] - src[shoulder])
            new[shoulder], new[elbow] = s, e
            new[wrist] = e + col("forearm") * (src[wrist] - src[elbow])
        for j in head:
            new[j] = new_thorax + col("head") * (src[j] - thorax)
        return new
