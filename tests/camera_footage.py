"""Test footage with a known camera motion: each frame of a still clip (a tripod's, or one made
still by :func:`stabilize`) turned by the homography ``K R_t K^-1`` of a chosen rotation path, as a
camera of a known focal length turning about its centre would see the still view (a picture at
infinity).

Conventions as in :mod:`vp3d_engine.camera_motion`: camera axes x right, y down, z forward;
``R_t`` turns frame ``t``'s axes into frame 0's; ``turn(yaw, tilt, roll)`` in degrees, yaw to the
right, tilt up, roll turning x towards y.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def turn(yaw: float, tilt: float, roll: float) -> np.ndarray:
    """``(3,3)`` rotation: yaw about y (right positive), then tilt about x (up), then roll about z."""
    a, b, c = np.radians([yaw, tilt, roll])
    about_y = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    about_z = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return about_y @ about_x @ about_z


def path(angles: np.ndarray) -> np.ndarray:
    """``(T,3,3)`` rotations from ``(T,3)`` yaw, tilt, roll in degrees."""
    return np.stack([turn(*a) for a in angles])


def slow_pan(times: np.ndarray) -> np.ndarray:
    """6 degrees to the right and 1.5 up, eased in and out over the clip (about 2 degrees/s)."""
    ease = 0.5 - 0.5 * np.cos(np.pi * times / times[-1])
    return path(np.stack([6.0 * ease, 1.5 * ease, 0 * ease], axis=1))


def fast_pan(times: np.ndarray) -> np.ndarray:
    """Swings of 7 degrees left and right at 1.2 Hz (53 degrees/s at the fastest), 5 degrees of
    tilt and 4 of roll at their own rates."""
    wave = [7.0 * np.sin(2 * np.pi * 1.2 * times), 5.0 * np.sin(2 * np.pi * 0.9 * times),
            4.0 * np.sin(2 * np.pi * 0.7 * times)]
    return path(np.stack(wave, axis=1))


def handheld(times: np.ndarray, seed: int = 0) -> np.ndarray:
    """A hand's shake: a smoothed random walk (a slow wander of about a degree) plus tremor at 3 to
    6 Hz of a few tenths of a degree, on every axis."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0.0, 0.12, (len(times), 3)), axis=0)
    walk = np.stack([np.convolve(w, np.ones(5) / 5, mode="same") for w in walk.T], axis=1)
    hz, phase, size = rng.uniform(3, 6, (2, 3)), rng.uniform(0, 2 * np.pi, (2, 3)), rng.uniform(0.1, 0.3, (2, 3))
    tremor = (size[:, None] * np.sin(2 * np.pi * hz[:, None] * times[None, :, None] + phase[:, None])).sum(axis=0)
    angles = walk + tremor
    return path(angles - angles[0])


def intrinsics(focal: float, size: tuple[int, int]) -> np.ndarray:
    """``K`` for a focal length in pixels, the principal point in the middle of ``size (w, h)``."""
    return np.array([[focal, 0, (size[0] - 1) / 2], [0, focal, (size[1] - 1) / 2], [0, 0, 1]])


class TurnedCamera:
    """A camera of ``focal`` pixels and ``size (w, h)`` turning inside the view of a ``source`` camera
    of ``source_focal`` pixels and ``source_size``."""

    def __init__(self, source_size: tuple[int, int], source_focal: float, size: tuple[int, int], focal: float):
        self.source_size, self.size, self.focal = source_size, size, focal
        self.k_source, self.k = intrinsics(source_focal, source_size), intrinsics(focal, size)

    def to_source(self, rotation: np.ndarray) -> np.ndarray:
        """Homography from this camera's pixels to the source's: ``K_s R K^-1``."""
        return self.k_source @ rotation @ np.linalg.inv(self.k)

    def covered(self, rotation: np.ndarray, margin: float = 0.0) -> bool:
        """Whether the whole frame shows the source, ``margin`` pixels inside its edges, for a turn
        ``rotation``."""
        w, h = self.size
        corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float)
        seen = corners @ self.to_source(rotation).T
        xy = seen[:, :2] / seen[:, 2:]
        sw, sh = self.source_size
        return bool((seen[:, 2] > 0).all() and (xy >= margin).all() and (xy[:, 0] <= sw - 1 - margin).all()
                    and (xy[:, 1] <= sh - 1 - margin).all())

    def frame(self, image: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.warpPerspective(image, self.to_source(rotation), self.size,
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)

    def boxes(self, boxes: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """``(N,4)`` source boxes ``x0,y0,x1,y1`` as boxes around where they appear in this camera."""
        return map_boxes(boxes, np.linalg.inv(self.to_source(rotation)))


def map_boxes(boxes: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """``(N,4)`` boxes ``x0,y0,x1,y1`` as boxes around where ``homography`` takes them."""
    out = []
    for x0, y0, x1, y1 in boxes:
        seen = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]]) @ homography.T
        xy = seen[:, :2] / seen[:, 2:]
        out.append([*xy.min(axis=0), *xy.max(axis=0)])
    return np.asarray(out, float).reshape(-1, 4)


def stabilize(frames: list[np.ndarray], boxes: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """A nearly still clip made still: each frame warped onto the first by a homography measured at
    full size (corners of the first frame outside everyone's boxes, Lucas-Kanade straight to the
    frame, RANSAC). Returns the frames, the homographies (frame to first) and the largest of the
    frames' median residuals in pixels."""
    import cv2

    first = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    mask = np.full(first.shape, 255, np.uint8)
    for x0, y0, x1, y1 in np.round(np.concatenate(boxes)).astype(int):
        mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 0
    corners = cv2.goodFeaturesToTrack(first, 400, 0.003, 12, mask=mask)
    out, homographies, worst = [frames[0]], [np.eye(3)], 0.0
    for image in frames[1:]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        found, ok, _ = cv2.calcOpticalFlowPyrLK(first, grey, corners, None, winSize=(21, 21), maxLevel=3)
        ok = ok[:, 0] == 1
        cv2.setRNGSeed(len(out))  # the same footage every run
        homography, inliers = cv2.findHomography(found[ok], corners[ok], cv2.RANSAC, 1.0)
        moved = cv2.perspectiveTransform(found[ok], homography)[:, 0] - corners[ok][:, 0]
        worst = max(worst, float(np.median(np.linalg.norm(moved, axis=1)[inliers[:, 0] == 1])))
        size = (image.shape[1], image.shape[0])
        out.append(cv2.warpPerspective(image, homography, size, flags=cv2.INTER_LINEAR))
        homographies.append(homography)
    return out, homographies, worst


def write_clip(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """RGB ``frames`` (H,W,3 uint8) as an H.264 video at ``fps``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "18", "preset": "veryfast", "threads": "1"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path
