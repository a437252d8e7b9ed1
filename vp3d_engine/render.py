"""The rendered preview (``NAME_preview.mp4``): the video with its 2D keypoints drawn, side by side
with the 3D skeleton standing on a ground grid, as the original VideoPose3D tools make it; drawn
with numpy and OpenCV, encoded with PyAV (H.264), one output frame per input frame at the input's
frame rate.

The 3D view is a perspective camera on an orbit around the subject: ``azimuth`` degrees about the
vertical (0: in front of the subject as it faces at the first frame), ``elevation`` degrees above
the floor, following the root across the floor so the subject stays in view; ``trail`` draws the
root's path on the floor.

With the video's camera known (:class:`~vp3d_engine.world_stage.WorldCamera`), the horizon it saw is
drawn over each frame: the vanishing line of the world's floor plane, where the rays ``d`` with
``(R_t d) . up = 0`` meet the picture (``R_t`` the frame's camera axes, x right, y down, z forward,
to the world's, Y up): the line ``K^-T R_t^T up`` in pixels, principal point at the image centre.
A camera level with the floor sees it through the centre, across; one that rolls sees it tilted
the other way; one that looks up sees it below the centre by ``focal tan(pitch)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.errors import BackendUnavailableError
from converters.joints import COCO17, H36M17
from converters.options import option
from vp3d_engine.video import iter_frames

if TYPE_CHECKING:
    from vp3d_engine.world_stage import WorldCamera

__all__ = ["RenderOptions", "horizon_lines", "render_preview"]

_H36M_BONES = [(c, p) for c, p in enumerate(H36M17.parents) if p >= 0]
_COCO_BONES = [(5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14),
               (14, 16), (0, 1), (0, 2), (1, 3), (2, 4)]
_LEFT_3D = set(H36M17.left)
_LEFT_2D = set(COCO17.left)
_BLUE, _RED, _GREY, _WHITE, _TRAIL = (60, 120, 255), (255, 80, 60), (90, 90, 90), (235, 235, 235), (90, 200, 90)
_HORIZON, _SHADOW = (255, 214, 0), (20, 20, 20)


@dataclass(frozen=True)
class RenderOptions:
    azimuth: float = option("render_azimuth").default
    elevation: float = option("render_elevation").default
    distance: float = 4.0  # metres from the subject
    trail: bool = option("render_trail").default


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise BackendUnavailableError(f"--render draws with OpenCV ({exc}); run scripts/setup.sh (the mediapipe "
                                      "extra installs opencv-python-headless)") from None
    return cv2


def _view_matrix(azimuth: float, elevation: float) -> np.ndarray:
    """World (Y up, subject facing +Z) to camera (x right, y down, z forward) rotation."""
    az, el = np.radians(azimuth), np.radians(elevation)
    forward = -np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])  # camera looks along
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def _project(points: np.ndarray, centre: np.ndarray, rot: np.ndarray, distance: float, size: int) -> np.ndarray:
    """``(...,3)`` world points to ``(...,2)`` pixels of a ``size`` square view looking at ``centre``."""
    cam = (points - centre) @ rot.T
    z = np.maximum(cam[..., 2] + distance, 0.1)
    focal = size * 1.1
    return np.stack([cam[..., 0] / z * focal + size / 2, cam[..., 1] / z * focal + size / 2], axis=-1)


def horizon_lines(rotations: np.ndarray, focal_px: float, image_size: tuple[int, int]) -> np.ndarray:
    """The horizon in each frame's picture: ``(T,3)`` lines ``(a, b, c)``, ``a x + b y + c = 0`` in
    pixels of ``image_size (w, h)`` (scaled so that ``a^2 + b^2 = 1``, ``(0, 0, 1)``: no horizon, the
    camera looks straight up or down), from ``rotations (T,3,3)``, each frame's camera axes (x right,
    y down, z forward) to the world's (Y up), and ``focal_px``."""
    w, h = image_size
    k = np.array([[focal_px, 0.0, (w - 1) / 2], [0.0, focal_px, (h - 1) / 2], [0.0, 0.0, 1.0]])
    up = np.asarray(rotations, np.float64)[:, 1, :]  # R_t^T (0, 1, 0): the world's up in camera axes
    lines = up @ np.linalg.inv(k)  # K^-T u, one row per frame
    norm = np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    flat = norm[:, 0] < 1e-9 * np.abs(lines[:, 2])
    return np.where(flat[:, None], [0.0, 0.0, 1.0], lines / np.where(flat[:, None], 1.0, norm))


def _line_ends(line: np.ndarray, w: int, h: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The ends of ``line`` ``(a, b, c)`` where it crosses a ``w`` x ``h`` picture, or None."""
    norm = float(np.hypot(line[0], line[1]))
    if norm < 1e-12:
        return None
    a, b, c = np.asarray(line, np.float64) / norm
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    foot = centre - (a * centre[0] + b * centre[1] + c) * np.array([a, b])  # nearest point to the centre
    along = np.array([-b, a]) * 2.0 * (w + h)
    if np.abs(foot).max() > 4.0 * (w + h):
        return None
    p, q = np.round(foot - along).astype(int), np.round(foot + along).astype(int)
    inside, p1, q1 = _cv2().clipLine((0, 0, w, h), (int(p[0]), int(p[1])), (int(q[0]), int(q[1])))
    return (tuple(p1), tuple(q1)) if inside else None


def _draw_horizon(image: np.ndarray, line: np.ndarray) -> None:
    cv2 = _cv2()
    h, w = image.shape[:2]
    ends = _line_ends(line, w, h)
    if ends is None:
        return
    width = max(2, h // 240)
    cv2.line(image, ends[0], ends[1], _SHADOW, width + 2, cv2.LINE_AA)  # seen on a bright sky too
    cv2.line(image, ends[0], ends[1], _HORIZON, width, cv2.LINE_AA)


def render_preview(video: Path, out: Path, keypoints_xy: np.ndarray, keypoints_valid: np.ndarray,
                   keypoint_times: np.ndarray, world_joints: np.ndarray, fps: float,
                   options: RenderOptions | None = None, start: float | None = None, end: float | None = None,
                   camera: WorldCamera | None = None) -> Path:
    """Write the preview of ``video`` (frames from ``start`` to ``end``) to ``out``. ``keypoints_xy
    (T,17,2)`` pixels and ``world_joints (T,17,3)`` (Y up, metres) at ``keypoint_times (T,)``; each
    video frame shows the nearest of them in time. ``camera``: the video's camera in the world, per
    frame of the animation (frame ``j`` at ``keypoint_times[0] + j / fps``, as the world stage
    places it); the horizon it saw is drawn over each frame (:func:`horizon_lines`)."""
    import av

    cv2 = _cv2()
    opts = options or RenderOptions()
    horizon = None if camera is None else horizon_lines(camera.rotations, camera.focal_px, camera.image_size)
    rot = _view_matrix(opts.azimuth, opts.elevation)
    root = world_joints[:, 0]
    grid = np.arange(-3.0, 3.01, 0.5)
    container = av.open(str(out), "w", format="mp4")
    stream: Any = None
    try:
        for frame in iter_frames(video, start, end):
            image = frame.image
            h, w = image.shape[:2]
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(round((fps or 30.0) * 1000), 1000))
                stream.width, stream.height = (w + h) // 2 * 2, h // 2 * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "superfast", "crf": "23"}
            k = int(np.clip(np.searchsorted(keypoint_times, frame.time), 0, len(keypoint_times) - 1))
            if k > 0 and abs(keypoint_times[k - 1] - frame.time) < abs(keypoint_times[k] - frame.time):
                k -= 1
            left = np.ascontiguousarray(image)
            if horizon is not None and camera is not None:
                j = int(np.clip(round((frame.time - keypoint_times[0]) * fps), 0, len(horizon) - 1))
                sx, sy = w / camera.image_size[0], h / camera.image_size[1]  # a frame of another size
                _draw_horizon(left, horizon[j] * [1 / sx, 1 / sy, 1.0])
            xy = keypoints_xy[k]
            for a, b in _COCO_BONES:
                if keypoints_valid[k, a] or keypoints_valid[k, b]:
                    colour = _BLUE if a in _LEFT_2D or b in _LEFT_2D else _RED
                    cv2.line(left, (int(xy[a, 0]), int(xy[a, 1])), (int(xy[b, 0]), int(xy[b, 1])), colour,
                             max(2, h // 240), cv2.LINE_AA)
            panel = np.full((h, h, 3), 28, np.uint8)
            centre = np.array([root[k, 0], 0.9, root[k, 2]])
            floor = np.array([root[k, 0], 0.0, root[k, 2]])
            for g in grid:  # the ground grid around the subject
                for line in (np.array([[g, 0, -3.0], [g, 0, 3.0]]), np.array([[-3.0, 0, g], [3.0, 0, g]])):
                    ends = _project(line + floor * [1, 0, 1], centre, rot, opts.distance, h)
                    cv2.line(panel, tuple(map(int, ends[0])), tuple(map(int, ends[1])), _GREY, 1, cv2.LINE_AA)
            if opts.trail and k > 0:
                path = _project(root[: k + 1] * [1, 0, 1], centre, rot, opts.distance, h).astype(np.int32)
                cv2.polylines(panel, [path], False, _TRAIL, 2, cv2.LINE_AA)
            p3 = _project(world_joints[k], centre, rot, opts.distance, h)
            for child, parent in _H36M_BONES:
                colour = _BLUE if child in _LEFT_3D else _RED if child in H36M17.right else _WHITE
                cv2.line(panel, (int(p3[child, 0]), int(p3[child, 1])), (int(p3[parent, 0]), int(p3[parent, 1])),
                         colour, max(2, h // 200), cv2.LINE_AA)
            canvas = np.concatenate([left, panel], axis=1)[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    finally:
        container.close()
    return out
