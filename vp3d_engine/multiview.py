"""A 3D reference from several calibrated cameras: triangulated 2D keypoints (numpy, OpenCV).

Calibration: Qualisys ``.qca`` XML as Pose2Sim ships it. Per camera, ``transform`` holds the
camera centre ``(x, y, z)`` in millimetres in a Z-up world and a rotation ``r11..r33``; the camera
looks along its -Z axis with +Y up in the image; ``intrinsic`` holds focal lengths and principal
point in 1/64 pixel units of the full sensor and Brown distortion (k1, k2, k3, p1, p2). The
rotation's direction (world-to-camera or the reverse) is checked on the data, not assumed: the
convention whose triangulation reprojects best is used (:func:`pick_convention`).

Triangulation (:func:`triangulate`), per frame and joint: undistorted rays from every view whose
detector score is high enough, a linear (DLT) solution; while a view reprojects more
than ``max_error_px`` away, the view whose removal fits the rest best is dropped and the point
solved again, as long as two remain. Left/right labels (:func:`fix_swaps`): a view whose left
and right joints fit better swapped is swapped for that frame (all ways of swapping are tried).
The default error limit, 30 px, allows for the principal points that are 20-30 px off on two
cameras of the shared recording.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.errors import InputFileError
from converters.joints import COCO17

__all__ = ["Camera", "fix_swaps", "load_qca", "pick_convention", "triangulate"]

_SUBPIXEL = 64.0


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in OpenCV's convention (x right, y down, z forward), metres."""

    name: str
    rotation: np.ndarray  # world to camera, (3,3)
    translation: np.ndarray  # (3,): camera = rotation @ world + translation
    matrix: np.ndarray  # K (3,3), pixels
    distortion: np.ndarray  # k1, k2, p1, p2, k3 (OpenCV order)
    size: tuple[int, int]

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points ``(...,3)`` to distorted pixels ``(...,2)``."""
        import cv2

        flat = points.reshape(-1, 3).astype(np.float64)
        rvec, _ = cv2.Rodrigues(self.rotation)
        pixels, _ = cv2.projectPoints(flat, rvec, self.translation, self.matrix, self.distortion)
        return pixels.reshape(*points.shape[:-1], 2)

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixels ``(...,2)`` to normalised undistorted image coordinates ``(...,2)``."""
        import cv2

        flat = pixels.reshape(-1, 1, 2).astype(np.float64)
        return cv2.undistortPoints(flat, self.matrix, self.distortion).reshape(*pixels.shape)

    @property
    def centre(self) -> np.ndarray:
        return -self.rotation.T @ self.translation


def load_qca(path: str | Path, transpose: bool = False) -> dict[str, Camera]:
    """Cameras by serial from a Qualisys calibration; ``transpose`` reads the rotation the other
    way round (see :func:`pick_convention`)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise InputFileError(f"{path}: not a readable Qualisys calibration ({exc})") from None
    cameras = {}
    for node in root.iter("camera"):
        t, k = node.find("transform"), node.find("intrinsic")
        if t is None or k is None:
            continue
        r = np.array([[float(t.get(f"r{i}{j}", "nan")) for j in (1, 2, 3)] for i in (1, 2, 3)])
        r = r.T if transpose else r
        centre = np.array([float(t.get(a, "nan")) for a in "xyz"]) / 1000.0
        to_cv = np.diag([1.0, -1.0, -1.0]) @ r  # looking along -Z with Y up -> OpenCV's z forward, y down
        fx, fy = float(k.get("focalLengthU", "nan")) / _SUBPIXEL, float(k.get("focalLengthV", "nan")) / _SUBPIXEL
        cx, cy = float(k.get("centerPointU", "nan")) / _SUBPIXEL, float(k.get("centerPointV", "nan")) / _SUBPIXEL
        matrix = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        distortion = np.array([float(k.get(n, "0")) for n in ("radialDistortion1", "radialDistortion2",
                                                                "tangentalDistortion1", "tangentalDistortion2",
                                                                "radialDistortion3")])
        size = (round(float(k.get("sensorMaxU", "0")) / _SUBPIXEL), round(float(k.get("sensorMaxV", "0")) / _SUBPIXEL))
        if not (np.isfinite(to_cv).all() and np.isfinite(centre).all() and np.isfinite(matrix).all()):
            raise InputFileError(f"{path}: camera {node.get('serial')} has missing numbers")
        cameras[str(node.get("serial"))] = Camera(str(node.get("serial")), to_cv, -to_cv @ centre, matrix,
                                                  distortion, size)
    if not cameras:
        raise InputFileError(f"{path}: no cameras in this calibration")
    return cameras


def _solve(rays: np.ndarray, cams: list[Camera]) -> np.ndarray:
    """DLT: the point whose projections are nearest the normalised ``rays (V,2)``."""
    rows = []
    for (x, y), cam in zip(rays, cams, strict=True):
        p = np.hstack([cam.rotation, cam.translation[:, None]])
        rows += [x * p[2] - p[0], y * p[2] - p[1]]
    _, _, vt = np.linalg.svd(np.array(rows))
    h = vt[-1]
    return np.asarray(h[:3] / h[3]) if abs(h[3]) > 1e-12 else np.full(3, np.nan)


def _fit(xy: dict[str, np.ndarray], rays: dict[str, np.ndarray], cameras: dict[str, Camera], f: int, k: int,
         views: list[str]) -> tuple[np.ndarray, float, float]:
    """The point from ``views`` and its largest and mean reprojection errors (pixels)."""
    point = _solve(np.array([rays[n][f, k] for n in views]), [cameras[n] for n in views])
    if not np.isfinite(point).all():
        return point, np.inf, np.inf
    err = np.array([np.linalg.norm(cameras[n].project(point) - xy[n][f, k]) for n in views])
    return point, float(err.max()), float(err.mean())


def triangulate(xy: dict[str, np.ndarray], scores: dict[str, np.ndarray], cameras: dict[str, Camera],
                min_score: float = 0.5, max_error_px: float = 30.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points ``(T,J,3)`` (NaN where fewer than two views agree) from pixels ``xy[name] (T,J,2)``,
    with the mean reprojection error ``(T,J)`` in pixels and the number of views used ``(T,J)``."""
    names = sorted(xy)
    t, j = xy[names[0]].shape[:2]
    rays = {n: cameras[n].rays(xy[n]) for n in names}
    points = np.full((t, j, 3), np.nan)
    errors = np.full((t, j), np.nan)
    used = np.zeros((t, j), dtype=np.int64)
    for f in range(t):
        for k in range(j):
            views = [n for n in names if scores[n][f, k] >= min_score]
            while len(views) >= 2:
                # of this set and every set with one view fewer, the one that fits best
                options = [views] + ([[v for v in views if v != drop] for drop in views] if len(views) > 2 else [])
                fits = [_fit(xy, rays, cameras, f, k, option) for option in options]
                if fits[0][1] <= max_error_px:
                    best = 0
                else:
                    best = int(np.argmin([fit[1] for fit in fits]))
                point, worst, mean = fits[best]
                if worst <= max_error_px and np.isfinite(point).all():
                    points[f, k], errors[f, k], used[f, k] = point, mean, len(options[best])
                    break
                if best == 0 or len(options[best]) < 2:
                    break
                views = options[best]
    return points, errors, used


_SWAP = COCO17.flip_permutation()
_SIDED = np.flatnonzero(_SWAP != np.arange(len(_SWAP)))  # joints with a left and a right


def fix_swaps(xy: dict[str, np.ndarray], scores: dict[str, np.ndarray], cameras: dict[str, Camera],
              min_score: float = 0.5) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    """Copies of ``xy`` and ``scores`` with left/right labels made to agree across views: per frame,
    of every way of swapping some views' labels, the one whose triangulated left and right joints
    reproject best (an all-views swap fits as well as none, so of equal fits the one that swaps
    fewer views wins: most views label a person right). How many frames each view was swapped."""
    names = sorted(xy)
    fixed = {n: v.copy() for n, v in xy.items()}
    fixed_scores = {n: v.copy() for n, v in scores.items()}
    counts = dict.fromkeys(names, 0)
    rays = {n: cameras[n].rays(xy[n]) for n in names}
    combos = [[n for b, n in enumerate(names) if mask >> b & 1] for mask in range(1 << len(names))]
    combos.sort(key=len)
    for f in range(next(iter(xy.values())).shape[0]):
        best, best_error = combos[0], np.inf
        for swapped in combos:
            errors = []
            for k in _SIDED:
                views = []
                for n in names:
                    j = _SWAP[k] if n in swapped else k
                    if scores[n][f, j] >= min_score:
                        views.append((n, j))
                if len(views) < 2:
                    continue
                point = _solve(np.array([rays[n][f, j] for n, j in views]), [cameras[n] for n, _ in views])
                if np.isfinite(point).all():
                    errors += [np.linalg.norm(cameras[n].project(point) - xy[n][f, j]) for n, j in views]
            error = float(np.mean(errors)) if errors else np.inf
            if error < best_error - 1.0:  # fewer swaps come first: a swap must fit clearly better
                best, best_error = swapped, error
        if _handedness(xy, scores, cameras, rays, names, best, f, min_score) < 0:
            best = [n for n in names if n not in best]  # the same agreement, the person's own left
        for n in best:
            fixed[n][f] = xy[n][f, _SWAP]
            fixed_scores[n][f] = scores[n][f, _SWAP]
            counts[n] += 1
    return fixed, fixed_scores, counts


def _handedness(xy: dict[str, np.ndarray], scores: dict[str, np.ndarray], cameras: dict[str, Camera],
                rays: dict[str, np.ndarray], names: list[str], swapped: list[str], f: int, min_score: float) -> float:
    """Positive when the labelled left hip and shoulder are on the person's left: to the left of
    the direction the face looks (nose ahead of the ears), with up from the hips to the shoulders.
    Zero when a joint it needs is not seen in two views."""
    points = {}
    for name in ("nose", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_hip", "right_hip"):
        k = COCO17.index(name)
        views = [(n, _SWAP[k] if n in swapped else k) for n in names]
        views = [(n, j) for n, j in views if scores[n][f, j] >= min_score]
        if len(views) < 2:
            return 0.0
        points[name] = _solve(np.array([rays[n][f, j] for n, j in views]), [cameras[n] for n, _ in views])
    up = points["left_shoulder"] + points["right_shoulder"] - points["left_hip"] - points["right_hip"]
    forward = points["nose"] - 0.5 * (points["left_ear"] + points["right_ear"])
    left = points["left_shoulder"] + points["left_hip"] - points["right_shoulder"] - points["right_hip"]
    return float(left @ np.cross(up, forward))


def pick_convention(path: str | Path, xy: dict[str, np.ndarray], scores: dict[str, np.ndarray]
                    ) -> tuple[dict[str, Camera], float]:
    """The reading of the calibration whose triangulation of ``xy`` reprojects best, and that
    median reprojection error in pixels."""
    best: tuple[dict[str, Camera], float] | None = None
    for transpose in (False, True):
        cameras = load_qca(path, transpose)
        frames = slice(0, min(20, next(iter(xy.values())).shape[0]))
        _, errors, used = triangulate({n: v[frames] for n, v in xy.items()}, {n: v[frames] for n, v in scores.items()},
                                      cameras, max_error_px=1e9)
        error = float(np.nanmedian(np.where(used >= 3, errors, np.nan)))
        if best is None or error < best[1]:
            best = (cameras, error)
    assert best is not None
    return best
