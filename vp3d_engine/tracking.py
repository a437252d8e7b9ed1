"""From per-frame detections to one clean track of one person.

1. **Tracklets.** People in consecutive frames are matched by bounding-box overlap (IoU of the
   keypoint boxes, Hungarian assignment); an unmatched person starts a new tracklet.
2. **Re-acquisition.** A tracklet that starts within ``max_gap`` frames after another ends, near
   where that one was last seen (centre distance under one box diagonal), continues it: detectors
   drop and re-find people.
3. **The main subject** is the track with the largest sum over its frames of ``sqrt(box area) x
   mean keypoint score``: large and confident for a long time. ``person=k`` picks the k-th instead.
4. **Filling.** Joints below ``min_score`` or in frames where the track has no detection are
   linearly interpolated over time (held at the ends) and flagged in ``valid``; a clip where the
   person is missing from most frames is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from converters.errors import ConversionError
from converters.joints import joint_set
from converters.types import Keypoints2D
from vp3d_engine.detectors.types import FrameDetections

__all__ = ["TrackResult", "build_tracks", "track_person"]


@dataclass(frozen=True)
class TrackResult:
    """The chosen person's keypoints and how much of them was filled in."""

    keypoints: Keypoints2D
    frames_present: float  # fraction of frames where the track has a detection
    joints_filled: float  # fraction of (frame, joint) values interpolated
    tracks_found: int


def _boxes(people: np.ndarray, min_score: float) -> np.ndarray:
    """(N,4) x0, y0, x1, y1 of the confident keypoints of each person."""
    out = np.zeros((people.shape[0], 4))
    for i, p in enumerate(people):
        pts = p[p[:, 2] >= min_score, :2]
        if pts.size == 0:
            pts = p[:, :2]
        out[i] = [*pts.min(axis=0), *pts.max(axis=0)]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: np.clip(r[:, 2] - r[:, 0], 1e-6, None) * np.clip(r[:, 3] - r[:, 1], 1e-6, None)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def build_tracks(dets: FrameDetections, min_score: float = 0.3, min_iou: float = 0.2,
                 max_gap: int = 30) -> list[dict[int, int]]:
    """Tracks as ``{frame: person index in that frame}``, linked across short gaps."""
    tracklets: list[dict[int, int]] = []
    last_boxes: list[np.ndarray] = []
    active: list[int] = []  # tracklet ids present in the previous frame
    prev_boxes = np.zeros((0, 4))
    for t, people in enumerate(dets.people):
        boxes = _boxes(people, min_score) if len(people) else np.zeros((0, 4))
        assigned: dict[int, int] = {}
        if len(active) and len(boxes):
            iou = _iou(prev_boxes, boxes)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= min_iou:
                    assigned[c] = active[r]
        new_active = []
        for i in range(len(boxes)):
            if i in assigned:
                tid = assigned[i]
            else:
                tid = len(tracklets)
                tracklets.append({})
                last_boxes.append(boxes[i])
            tracklets[tid][t] = i
            last_boxes[tid] = boxes[i]
            new_active.append(tid)
        active, prev_boxes = new_active, boxes
    # Link a tracklet to one that ended shortly before, close by.
    order = sorted(range(len(tracklets)), key=lambda k: min(tracklets[k]))
    merged: list[dict[int, int]] = []
    ends: list[tuple[int, np.ndarray]] = []  # (last frame, last box) per merged track
    for k in order:
        first = min(tracklets[k])
        first_box = _boxes(dets.people[first][tracklets[k][first]][None], min_score)[0]
        best, best_d = None, np.inf
        for m, (last, box) in enumerate(ends):
            if 0 < first - last <= max_gap:
                diag = np.hypot(box[2] - box[0], box[3] - box[1])
                d = np.hypot(*((first_box[:2] + first_box[2:]) / 2 - (box[:2] + box[2:]) / 2))
                if d < diag and d < best_d:
                    best, best_d = m, d
        last = max(tracklets[k])
        last_box = _boxes(dets.people[last][tracklets[k][last]][None], min_score)[0]
        if best is None:
            merged.append(dict(tracklets[k]))
            ends.append((last, last_box))
        else:
            merged[best].update(tracklets[k])
            ends[best] = (last, last_box)
    return merged


def _track_weight(track: dict[int, int], dets: FrameDetections, min_score: float) -> float:
    total = 0.0
    for t, i in track.items():
        p = dets.people[t][i]
        box = _boxes(p[None], min_score)[0]
        total += float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 0.0)) * p[:, 2].mean())
    return total


def _fill(values: np.ndarray, valid: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Interpolate ``values (T,K,2)`` over time where ``valid (T,K)`` is false (held at the ends)."""
    out = values.copy()
    for k in range(values.shape[1]):
        ok = valid[:, k]
        if ok.all() or not ok.any():
            continue
        for c in range(values.shape[2]):
            out[~ok, k, c] = np.interp(times[~ok], times[ok], values[ok, k, c])
    return out


_FIRST_BODY_JOINT = 5  # COCO-17: 0-4 are the face (nose, eyes, ears), 5-16 the body
# Face points relative to the shoulders' midpoint, in shoulder widths (x along the shoulders from
# the person's right to left, y up): used only for points the detector never saw (a person seen
# from behind), and flagged as filled.
_FACE_FROM_SHOULDERS = {0: (0.0, 0.55), 1: (0.12, 0.65), 2: (-0.12, 0.65), 3: (0.3, 0.6), 4: (-0.3, 0.6)}


def _place_unseen_face(xy: np.ndarray, never: np.ndarray) -> np.ndarray:
    out = xy.copy()
    left, right = out[:, 5], out[:, 6]
    mid = 0.5 * (left + right)
    across = left - right  # image vector from the person's right shoulder to the left one
    up = np.stack([across[:, 1], -across[:, 0]], axis=-1)  # perpendicular, pointing up in the image
    up = np.where((up[:, 1:2] > 0), -up, up)
    for k in np.flatnonzero(never):
        a, b = _FACE_FROM_SHOULDERS[int(k)]
        out[:, k] = mid + a * across + b * up
    return out


def track_person(dets: FrameDetections, image_size: tuple[int, int], fps: float, person: int = 0,
                 min_score: float = 0.3, min_presence: float = 0.5) -> TrackResult:
    """Pick one person (``person=0``: the main subject) and return clean, gap-filled keypoints."""
    t = dets.num_frames
    if t == 0:
        raise ConversionError("no frames to track a person in")
    tracks = build_tracks(dets, min_score=min_score)
    if not tracks:
        raise ConversionError(f"no person was detected in any of the {t} frames; is a person fully visible?")
    tracks.sort(key=lambda tr: _track_weight(tr, dets, min_score), reverse=True)
    if not 0 <= person < len(tracks):
        raise ConversionError(f"--person {person} asked for, but only {len(tracks)} people were tracked "
                              f"(0 to {len(tracks) - 1})")
    track = tracks[person]
    k = dets.people[next(iter(track))].shape[1]
    raw = np.zeros((t, k, 3))
    present = np.zeros(t, dtype=bool)
    for frame, i in track.items():
        raw[frame] = dets.people[frame][i]
        present[frame] = True
    presence = float(present.mean())
    if presence < min_presence:
        raise ConversionError(
            f"the person is missing from {1 - presence:.0%} of the frames; trim the clip to where the "
            "person is visible (--start/--end) or check that the whole body is in view")
    times = dets.timestamps if dets.timestamps is not None else np.arange(t) / fps
    valid = present[:, None] & (raw[:, :, 2] >= min_score)
    never = ~valid.any(axis=0)
    body_never = [k for k in np.flatnonzero(never) if k >= _FIRST_BODY_JOINT]
    if body_never:
        names = ", ".join(joint_set(dets.format).names[k] for k in body_never)
        raise ConversionError(f"{names} never seen with confidence; is the whole body in view?")
    xy = _fill(raw[:, :, :2], valid, times)
    if never.any():
        xy = _place_unseen_face(xy, never)
    kp = Keypoints2D(xy=xy, score=np.where(present[:, None], raw[:, :, 2], 0.0), valid=valid, format=dets.format,
                     image_size=image_size, fps=fps, timestamps=times.astype(np.float64),
                     meta={"tracks_found": len(tracks), "person": person})
    return TrackResult(keypoints=kp, frames_present=presence, joints_filled=float(1 - valid.mean()),
                       tracks_found=len(tracks))
