"""The camera's rotation per frame, from the background of a video (a phone that pans, tilts, shakes).

Conventions: camera axes x right, y down, z forward; ``rotations[t]`` turns a direction in frame
``t``'s camera axes into frame 0's (``rotations[0]`` is the identity), column vectors. The
principal point is the image centre, the lens is taken as distortion-free, ``focal_px`` is in
pixels of the displayed frame.

Method: frames halved until at most :data:`WORK_SIZE` pixels on the long side, grey; corners
(``goodFeaturesToTrack``) of a keyframe outside the people's boxes are looked for in each later
frame by pyramidal Lucas-Kanade straight from the keyframe (so tracks do not drift from frame to
frame), starting where the keyframe's motion so far puts them; a RANSAC homography keeps the
consistent ones and the rotation between the keyframe's and the frame's rays is solved in closed
form (Kabsch). A new keyframe is taken once too few tracks fit, so error adds up per keyframe, not
per frame. The focal length, when not given, is the one under which rotations best explain the
widest links and the keyframes' chained homographies (``x' ~ K R K^-1 x`` holds for the true K
only). What the rotation leaves unexplained in the background (parallax) tells a camera that
moves from one that only turns. Bad input (too short, too dark, too uniform, too few features)
gives a static camera and a one-line ``reason``; nothing raises for it.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import BackendUnavailableError, ConfigurationError
from vp3d_engine.video import in_background, iter_frames

__all__ = ["CameraMotion", "CameraTracker", "boxes_of_people", "estimate_camera_motion"]

WORK_SIZE = 640  # most pixels on the long side where corners are tracked
MAX_FEATURES = 200
CORNER_QUALITY = 0.001  # of the best corner: weak corners too, on plain walls
MIN_FIT = 12  # fewer consistent tracks than this: the frame is lost
KEEP_SHARE = 0.6  # a new keyframe once fewer than this share of its corners fit
LK_WINDOW, LK_LEVELS = (21, 21), 3  # a wide window rides out motion blur
RANSAC_PX = 1.0  # work pixels
DARK = 20.0  # median grey level (0-255) below which a clip is too dark
FLAT = 5.0  # median grey standard deviation below which a clip is too uniform
MAX_LOST = 0.5  # share of frames that may be lost before the estimate is given up
STATIC_DEG = 0.2  # largest turn still called static (rotations then set to the identity)
PARALLAX_DEG = 0.4  # background this far from where the rotation puts it: the camera moves
MIN_FOCAL_TURN_DEG = 3.0  # pan or tilt needed to tell the focal length from the footage
DEFAULT_FOCAL = 0.9  # x the long side: a phone's main camera filming video
PEOPLE_MARGIN = 0.1  # people's boxes grown by this share of their size on each side (plus 4 work px)

People = Sequence[np.ndarray] | Callable[[int], np.ndarray | None]


@dataclass(frozen=True)
class CameraMotion:
    """The camera's rotation per frame.

    ``rotations (T,3,3)``: frame ``t``'s camera axes to frame 0's; ``times (T,)`` seconds;
    ``focal_px`` in pixels of ``image_size (w, h)``; ``focal_estimated``: measured from the footage
    (else given, or :data:`DEFAULT_FOCAL` x the long side: ``figures["focal_default"]`` is 1);
    ``kind``: ``"static"``, ``"rotating"`` or ``"moving"`` (the camera's position moves too: parallax
    the rotation cannot explain, so the rotations are approximate; people not left out read as
    parallax, so give their boxes). ``figures``: ``max_angle_deg``
    (from frame 0, before a static camera is set to the identity), ``path_deg`` (summed frame to
    frame), ``inlier_share``, ``residual_px`` and ``parallax_px`` (full-size pixels), ``parallax_deg``,
    ``lost_share``, ``keyframes``, ``frames_per_s`` (the estimate alone; from a file also
    ``frames_per_s_with_decoding``, counting the frames a ``stride`` skips). ``reason``: why the camera
    was taken as static when the footage could not tell.
    """

    rotations: np.ndarray
    times: np.ndarray
    focal_px: float
    image_size: tuple[int, int]
    focal_estimated: bool
    kind: str
    figures: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def __post_init__(self) -> None:
        if self.rotations.ndim != 3 or self.rotations.shape[1:] != (3, 3):
            raise ValueError(f"rotations must be (T,3,3), got {self.rotations.shape}")
        if self.times.shape != (len(self.rotations),):
            raise ValueError(f"times must be ({len(self.rotations)},), got {self.times.shape}")
        if self.kind not in ("static", "rotating", "moving"):
            raise ValueError(f"kind must be static, rotating or moving, got {self.kind!r}")

    def at(self, times: np.ndarray) -> np.ndarray:
        """Rotations ``(N,3,3)`` at ``times`` (seconds): slerped, carried on at the ends' rate for
        up to one step past them (the frames a ``stride`` left after the last one), then held."""
        from scipy.spatial.transform import Rotation, Slerp

        times, have = np.asarray(times, np.float64), self.times
        rotations = self.rotations
        if len(have) > 1 and (np.diff(have) <= 0).any():  # a video with repeated stamps: the first of each
            have, first = np.unique(have, return_index=True)
            rotations = rotations[first]
        if len(have) < 2:
            return np.repeat(rotations[:1], len(times), axis=0)
        out = Slerp(have, Rotation.from_matrix(rotations))(np.clip(times, have[0], have[-1])).as_matrix()
        for end, inner, side in ((-1, -2, times > have[-1]), (0, 1, times < have[0])):
            step = Rotation.from_matrix(rotations[inner].T @ rotations[end]).as_rotvec()
            ahead = np.minimum(np.abs(times[side] - have[end]) / abs(have[end] - have[inner]), 1.0)
            out[side] = rotations[end] @ Rotation.from_rotvec(ahead[:, None] * step).as_matrix()
        return np.asarray(out)


def boxes_of_people(people: np.ndarray, min_score: float = 0.2) -> np.ndarray:
    """``(N,4)`` boxes ``x0,y0,x1,y1`` from ``(N,4)`` boxes (returned as they are) or ``(N,K,2|3)``
    keypoints (``x, y[, score]`` in pixels; joints under ``min_score`` left out), reaching a little
    past the outer joints to the body's outline."""
    people = np.asarray(people, np.float64)
    if people.size == 0:
        return np.zeros((0, 4))
    if people.ndim == 2 and people.shape[1] == 4:
        return people
    if people.ndim != 3 or people.shape[2] not in (2, 3):
        raise ValueError(f"people must be (N,4) boxes or (N,K,2|3) keypoints, got {people.shape}")
    boxes = []
    for joints in people:
        seen = joints[joints[:, 2] >= min_score, :2] if joints.shape[1] == 3 else joints
        seen = seen[np.isfinite(seen).all(axis=1)]
        if len(seen):
            (x0, y0), (x1, y1) = seen.min(axis=0), seen.max(axis=0)
            pad = 0.15 * max(x1 - x0, y1 - y0)
            boxes.append((x0 - pad, y0 - pad, x1 + pad, y1 + pad))
    return np.asarray(boxes, np.float64).reshape(-1, 4)


@dataclass
class _Link:
    """A frame's tracks that fit its keyframe ``ref`` (``(N,2)`` work pixels in each), the share of
    the tracks seen that fit, the homography ``to_key (3,3)`` from the frame to the keyframe, and
    the tracks seen that do not fit, ``stray (M,4)``: keyframe x, y, frame x, y."""

    ref: int
    ref_pts: np.ndarray
    cur_pts: np.ndarray
    share: float
    to_key: np.ndarray
    stray: np.ndarray


class CameraTracker:
    """Streaming estimator: :meth:`add` each frame in order (RGB ``(H,W,3)`` or grey ``(H,W)``
    uint8, its time, the people's boxes or keypoints in its pixels), then :meth:`finish`. For a
    caller that decodes the video anyway (the pipeline), so frames are not decoded twice."""

    def __init__(self) -> None:
        self._size: tuple[int, int] | None = None
        self._scale = 1.0
        self._times: list[float] = []
        self._levels: list[tuple[float, float]] = []
        self._links: list[_Link | None] = []
        self._key, self._key_pts, self._key_grey = 0, np.zeros((0, 2), np.float32), np.zeros((0, 0), np.uint8)
        self._to_frame, self._before = np.eye(3), np.eye(3)  # keyframe -> last frame, -> the one before
        self._keyframes, self._seconds = 0, 0.0

    def add(self, image: np.ndarray, time: float, people: np.ndarray | None = None) -> None:
        cv2 = _cv2()
        started = clock.perf_counter()
        h, w = image.shape[:2]
        if self._size is None:
            self._size, self._scale = (w, h), 0.5 ** max(0, int(np.ceil(np.log2(max(w, h) / WORK_SIZE))))
        elif self._size != (w, h):
            raise ValueError(f"frame {len(self._times)} is {w}x{h}, the first was {self._size[0]}x{self._size[1]}")
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        k = round(1 / self._scale)
        if k > 1:  # by a whole factor (fast): pixel x lands on (x + 0.5) / k - 0.5
            grey = cv2.resize(grey[:h - h % k, :w - w % k], (w // k, h // k), interpolation=cv2.INTER_AREA)
        mean, std = cv2.meanStdDev(grey)
        self._levels.append((float(mean[0, 0]), float(std[0, 0])))
        boxes = np.zeros((0, 4)) if people is None else boxes_of_people(people)
        grow = PEOPLE_MARGIN * (boxes[:, 2:] - boxes[:, :2])
        boxes = (np.hstack([boxes[:, :2] - grow, boxes[:, 2:] + grow]) + 0.5) / k - 0.5 + [-4, -4, 4, 4]
        index = len(self._times)
        self._times.append(float(time))
        link = self._track(grey, boxes) if index else None
        self._links.append(link)
        if link is None or len(link.ref_pts) < max(MIN_FIT, KEEP_SHARE * len(self._key_pts)):
            self._new_keyframe(grey, boxes, index, link is not None)
        self._seconds += clock.perf_counter() - started

    def _track(self, grey: np.ndarray, boxes: np.ndarray) -> _Link | None:
        """The keyframe's corners found in this frame; a corner under a person now is left out of
        this frame only."""
        cv2 = _cv2()
        if len(self._key_pts) < MIN_FIT:
            return None
        last, before = _apply(self._to_frame, self._key_pts), _apply(self._before, self._key_pts)
        found, ok, _ = cv2.calcOpticalFlowPyrLK(
            self._key_grey, grey, self._key_pts.reshape(-1, 1, 2), (2 * last - before).reshape(-1, 1, 2),
            winSize=LK_WINDOW, maxLevel=LK_LEVELS, flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
            criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        pts = found[:, 0]
        h, w = grey.shape
        seen = (ok[:, 0] == 1) & (pts >= 0).all(axis=1) & (pts[:, 0] <= w - 1) & (pts[:, 1] <= h - 1)
        seen &= ~_inside(pts, boxes)
        if seen.sum() < MIN_FIT:
            return None
        cv2.setRNGSeed(len(self._times))  # RANSAC's draws: the same video gives the same answer
        to_key, inliers = cv2.findHomography(pts[seen], self._key_pts[seen], cv2.RANSAC, RANSAC_PX)
        if to_key is None or int(inliers.sum()) < MIN_FIT:
            return None
        fit, stray = np.flatnonzero(seen)[inliers[:, 0] == 1], np.flatnonzero(seen)[inliers[:, 0] == 0]
        self._before, self._to_frame = self._to_frame, np.linalg.inv(to_key)
        return _Link(self._key, self._key_pts[fit], pts[fit], len(fit) / int(seen.sum()), to_key,
                     np.hstack([self._key_pts[stray], pts[stray]]))

    def _new_keyframe(self, grey: np.ndarray, boxes: np.ndarray, index: int, tracked: bool) -> None:
        cv2 = _cv2()
        mask = np.full(grey.shape, 255, np.uint8)
        for x0, y0, x1, y1 in np.round(boxes).astype(int):
            mask[max(y0, 0):max(y1 + 1, 0), max(x0, 0):max(x1 + 1, 0)] = 0
        corners = cv2.goodFeaturesToTrack(grey, MAX_FEATURES, CORNER_QUALITY, 8, mask=mask, blockSize=5)
        self._key_pts = np.zeros((0, 2), np.float32) if corners is None else corners[:, 0].astype(np.float32)
        # the last step's motion carries on into the new keyframe's first guess
        self._before = self._before @ np.linalg.inv(self._to_frame) if tracked else np.eye(3)
        self._key, self._key_grey, self._to_frame = index, grey, np.eye(3)
        self._keyframes += 1

    def finish(self, focal_px: float | None = None, times: np.ndarray | None = None,
               extra: dict[str, float] | None = None) -> CameraMotion:
        """The estimate over the frames added, at their times or at ``times`` (seconds, slerped);
        ``focal_px`` when known; ``extra`` figures join the result's."""
        if self._size is None:
            raise ValueError("no frames were added")
        stamps, links, scale = np.asarray(self._times), self._links, self._scale
        figures = {"frames_per_s": len(stamps) / max(self._seconds, 1e-9), "keyframes": float(self._keyframes),
                   **(extra or {})}
        centre = ((self._size[0] * scale - 1) / 2, (self._size[1] * scale - 1) / 2)
        lost = sum(link is None for link in links[1:]) / max(len(links) - 1, 1)
        level, contrast = np.median(np.asarray(self._levels), axis=0)
        reason = _bad_input(len(stamps), float(level), float(contrast), lost)
        work_focal = None if focal_px is None else focal_px * scale
        if work_focal is None and not reason:
            work_focal = _focal_from_links(links, centre, 2 * max(centre) + 1)
        estimated = focal_px is None and work_focal is not None
        figures.update(lost_share=lost, focal_given=float(focal_px is not None),
                       focal_default=float(work_focal is None))
        focal = work_focal / scale if work_focal is not None else DEFAULT_FOCAL * max(self._size)
        rotations = np.repeat(np.eye(3)[None], len(stamps), axis=0)
        kind = "static"
        if not reason:
            turned, residual, parallax = _chain_rotations(links, focal * scale, centre)
            steps = _angle_deg(np.einsum("tji,tjk->tik", turned[:-1], turned[1:]))
            figures.update(max_angle_deg=float(_angle_deg(turned).max()), path_deg=float(steps.sum()),
                           inlier_share=float(np.mean([k.share for k in links if k is not None])),
                           residual_px=residual / scale, parallax_px=parallax / scale,
                           parallax_deg=float(np.degrees(parallax / (focal * scale))))
            if figures["max_angle_deg"] > STATIC_DEG:  # else a tripod: what is left is tracking noise
                rotations, kind = turned, "moving" if figures["parallax_deg"] > PARALLAX_DEG else "rotating"
        motion = CameraMotion(rotations, stamps, float(focal), self._size, estimated, kind, figures, reason)
        if times is None:
            return motion
        return replace(motion, rotations=motion.at(times), times=np.asarray(times, np.float64))


def _bad_input(frames: int, level: float, contrast: float, lost: float) -> str:
    """Why a clip cannot give a camera motion (one line), or ""."""
    if frames < 3:
        return f"too short: {frames} frame{'s' * (frames != 1)} (3 or more are needed)"
    if level < DARK:
        return f"too dark: median grey level {level:.0f} of 255 (at least {DARK:.0f} is needed)"
    if contrast < FLAT:
        return f"too uniform: median contrast {contrast:.1f} grey levels (at least {FLAT:.0f} is needed)"
    if lost > MAX_LOST:
        return f"too few features outside the people: {lost:.0%} of frames could not be followed"
    return ""


def _padded(pairs: Sequence[tuple[np.ndarray, np.ndarray]], cap: int = 128
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point pairs of several links as arrays ``(L,N,2)`` keyframe, frame, and a mask ``(L,N)``,
    at most ``cap`` evenly picked per link."""
    n, size = len(pairs), min(cap, max(len(r) for r, _ in pairs))
    ref, cur, mask = np.zeros((n, size, 2)), np.zeros((n, size, 2)), np.zeros((n, size), bool)
    for i, (r, c) in enumerate(pairs):
        pick = np.linspace(0, len(r) - 1, min(len(r), size)).round().astype(int)
        ref[i, :len(pick)], cur[i, :len(pick)], mask[i, :len(pick)] = r[pick], c[pick], True
    return ref, cur, mask


def _rays(pts: np.ndarray, focal: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """Unit directions ``(..., N, 3)`` of pixels ``(..., N, 2)``; ``focal`` broadcasts over ``...``."""
    xy = (pts - np.asarray(centre)) / focal[..., None, None]
    rays = np.concatenate([xy, np.ones((*xy.shape[:-1], 1))], axis=-1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _solve(ref: np.ndarray, cur: np.ndarray, mask: np.ndarray, focal: float | np.ndarray,
           centre: tuple[float, float], trim: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rotations ``(...,3,3)`` best turning the frames' rays into the keyframes' (Kabsch) and the
    pixels ``(...,N)`` each point is left off; with ``trim``, refit without the points more than
    3 x the median (at least 1 px) off."""
    f = np.asarray(focal, np.float64)
    key, turned_from = _rays(ref, f, centre), _rays(cur, f, centre)
    weight = mask.astype(np.float64)
    for _ in range(2 if trim else 1):
        u, _, vt = np.linalg.svd(np.einsum("...ni,...nj->...ij", key * weight[..., None], turned_from))
        d = np.sign(np.linalg.det(u @ vt))
        rotation = u @ (vt * np.stack([np.ones_like(d), np.ones_like(d), d], axis=-1)[..., :, None])
        turned = np.einsum("...ij,...nj->...ni", rotation, turned_from)
        off = np.linalg.norm(f[..., None, None] * turned[..., :2] / np.maximum(turned[..., 2:], 1e-6)
                             + np.asarray(centre) - ref, axis=-1)
        median = np.nanmedian(np.where(mask, off, np.nan), axis=-1, keepdims=True)
        kept = mask & (off <= np.maximum(3.0 * median, 1.0))
        weight = np.where(kept.sum(axis=-1, keepdims=True) >= MIN_FIT, kept, mask).astype(np.float64)
    return rotation, np.where(weight > 0, off, np.nan)


def _widest(links: Sequence[_Link | None], per_keyframe: int) -> list[_Link]:
    """The links that moved most (median pixels), ``per_keyframe`` at most from each keyframe."""
    moved = sorted((k for k in links if k is not None),
                   key=lambda k: -float(np.median(np.linalg.norm(k.cur_pts - k.ref_pts, axis=1))))
    taken: dict[int, int] = {}
    out = []
    for link in moved:
        if taken.setdefault(link.ref, 0) < per_keyframe:
            taken[link.ref] += 1
            out.append(link)
    return out


def _spans(links: list[_Link | None], centre: tuple[float, float]) -> list[_Link]:
    """Links from frames to frame 0 through the keyframes' chained homographies (a grid of points
    and where the chain takes them): wider than any one keyframe's, to tell the focal length."""
    to_first: dict[int, np.ndarray] = {0: np.eye(3)}
    w, h = 2 * centre[0] + 1, 2 * centre[1] + 1
    grid = np.stack(np.meshgrid(np.linspace(0.05 * w, 0.95 * w, 8), np.linspace(0.05 * h, 0.95 * h, 6)), -1)
    grid = grid.reshape(-1, 2)
    spans = []
    for t, link in enumerate(links):
        if link is None or link.ref not in to_first:
            continue
        to_first[t] = to_first[link.ref] @ link.to_key
        seen = _apply(to_first[t], grid).astype(np.float64)
        inside = (seen >= 0).all(axis=1) & (seen[:, 0] <= w - 1) & (seen[:, 1] <= h - 1)
        if inside.sum() >= MIN_FIT:
            spans.append(_Link(0, seen[inside], grid[inside], 1.0, to_first[t], np.zeros((0, 4))))
    return spans


def _focal_from_links(links: list[_Link | None], centre: tuple[float, float], long_side: float) -> float | None:
    """The focal length (work pixels) under which rotations explain the widest links best, searched
    over 0.5 to 3 x the long side; None when the pans and tilts are too small to tell."""
    wide = _widest(links, 4)[:40] + _widest(_spans(links, centre), 40)[:20]
    if not wide:
        return None
    ref, cur, mask = _padded([(k.ref_pts, k.cur_pts) for k in wide], 100)
    grid = np.geomspace(0.5 * long_side, 3.0 * long_side, 48)
    off = _solve(ref, cur, mask, grid[:, None], centre, trim=False)[1]
    cost = np.nanmean(np.minimum(off**2, 4.0), axis=-1).sum(axis=-1)
    best = int(np.argmin(cost))
    focal = float(grid[best])
    if 0 < best < len(grid) - 1:  # a parabola through the neighbours, in log focal
        a, b, c = cost[best - 1:best + 2]
        if a - 2 * b + c > 0:
            focal *= float((grid[1] / grid[0]) ** (0.5 * (a - c) / (a - 2 * b + c)))
    turns = _rotvec(_solve(ref, cur, mask, focal, centre)[0])[:, :2]  # pan and tilt: roll cannot tell
    wider, narrower = np.interp(np.log([focal * 1.25, focal / 1.25]), np.log(grid), cost)
    flat = min(wider, narrower) < 1.05 * cost.min() + 0.01 * len(wide)  # 25% off fits as well
    return None if flat or np.degrees(np.linalg.norm(turns, axis=1).max()) < MIN_FOCAL_TURN_DEG else focal


def _chain_rotations(links: list[_Link | None], focal: float, centre: tuple[float, float]
                     ) -> tuple[np.ndarray, float, float]:
    """Rotations ``(T,3,3)`` to frame 0 (a lost frame holds the one before), the median residual
    (work pixels) and the parallax: in each keyframe's widest link, how far the rotation leaves the
    background's tracks, strays included (the 75th percentile: a quarter of the background at
    another depth shows), the median over keyframes."""
    found = [k for k in links if k is not None]
    turn_of, residuals = {}, []
    for part in range(0, len(found), 1024):  # bounded memory on long videos
        turns, off = _solve(*_padded([(k.ref_pts, k.cur_pts) for k in found[part:part + 1024]], 64), focal, centre)
        turn_of.update({id(k): turn for k, turn in zip(found[part:part + 1024], turns, strict=True)})
        residuals.append(np.nanmedian(off, axis=1))
    rotations = np.repeat(np.eye(3)[None], len(links), axis=0)
    for t, link in enumerate(links[1:], start=1):
        rotations[t] = rotations[link.ref] @ turn_of[id(link)] if link is not None else rotations[t - 1]
    wide = _widest(links, 1)
    every = _padded([(np.vstack([k.ref_pts, k.stray[:, :2]]), np.vstack([k.cur_pts, k.stray[:, 2:]]))
                     for k in wide], 256)
    turned = np.stack([turn_of[id(link)] for link in wide])
    f = np.asarray(focal, np.float64)
    seen = np.einsum("lij,lnj->lni", turned, _rays(every[1], f, centre))
    parallax = np.linalg.norm(f * seen[..., :2] / np.maximum(seen[..., 2:], 1e-6) + centre - every[0], axis=-1)
    parallax = np.nanpercentile(np.where(every[2], parallax, np.nan), 75, axis=1)
    return rotations, float(np.median(np.concatenate(residuals))), float(np.median(parallax))


def _angle_deg(rotations: np.ndarray) -> np.ndarray:
    cos = (np.trace(rotations, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _rotvec(rotations: np.ndarray) -> np.ndarray:
    """Axis x angle (radians) of rotations ``(...,3,3)`` turned less than 180 degrees."""
    angle = np.radians(_angle_deg(rotations))
    axis = np.stack([rotations[..., 2, 1] - rotations[..., 1, 2], rotations[..., 0, 2] - rotations[..., 2, 0],
                     rotations[..., 1, 0] - rotations[..., 0, 1]], axis=-1)
    return axis * (angle / np.maximum(2 * np.sin(angle), 1e-12))[..., None]


def _apply(homography: np.ndarray, pts: np.ndarray) -> np.ndarray:
    seen = pts @ homography[:, :2].T + homography[:, 2]
    return (seen[:, :2] / seen[:, 2:]).astype(np.float32)


def _inside(pts: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x, y = pts[:, :1], pts[:, 1:2]
    return ((x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])).any(axis=1)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise BackendUnavailableError("estimating the camera's motion needs OpenCV: pip install "
                                      "opencv-python-headless (the `mediapipe` extra has it)") from None
    return cv2


def estimate_camera_motion(video: Path | str, *, people: People | None = None, times: np.ndarray | None = None,
                           focal_px: float | None = None, start: float | None = None, end: float | None = None,
                           stride: int = 1) -> CameraMotion:
    """The camera's rotation per frame of ``video`` between ``start`` and ``end`` seconds.

    ``people``: per frame, the people to leave out of the background, as ``(N,4)`` boxes
    ``x0,y0,x1,y1`` or ``(N,K,2|3)`` keypoints (e.g. ``FrameDetections.people``) in pixels of the
    displayed frame; a sequence or a function of :attr:`vp3d_engine.video.Frame.index` (frames
    counted from ``start`` before ``stride``, as a stride-1 detection pass over the same span gives
    them). ``stride``: estimate on every ``stride``-th frame; ``times`` (seconds): the rotations
    slerped to those times (e.g. every frame's), else at the frames estimated. ``focal_px``: the
    focal length in pixels when known. A file that cannot be read raises
    :class:`~converters.errors.InputFileError` (from decoding).
    """
    tracker, count = CameraTracker(), 0
    started = clock.perf_counter()
    for frame in in_background(iter_frames(video, start, end, stride), name="vp3d-camera-decode"):
        found = None
        if callable(people):
            found = people(frame.index)
        elif people is not None:
            if frame.index >= len(people):
                raise ConfigurationError(f"people are given for {len(people)} frames but {video} has more from "
                                         f"{start or 0:g}s: give one entry per frame (before stride)")
            found = people[frame.index]
        tracker.add(frame.image, frame.time, found)
        count += 1
    covered = count * stride / (clock.perf_counter() - started)  # video frames, decoding included
    return tracker.finish(focal_px, times, {"frames_per_s_with_decoding": covered})
