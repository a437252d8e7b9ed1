"""From per-frame detections to one clean track of one person.

1. **Tracks.** Each frame's people are matched (Hungarian assignment) to the tracks seen in the
   last ``max_gap`` frames: by the overlap (IoU) of their keypoint boxes with where each track was
   last seen, or, for a track missing for a few frames, by being close to where it was at a
   similar size (detectors drop and re-find people, and jump to a bystander for a frame or two).
   An unmatched person starts a new track.
2. **Outliers.** A pose far away, or much smaller or larger, never continues a track: it is
   another track (usually a short one), and the subject's track has a gap there.
3. **The main subject** is the track with the largest sum over its frames of ``sqrt(box area) x
   mean keypoint score``: large and confident for a long time. ``person=k`` picks the k-th instead.
   A detector that ranks people itself (MediaPipe's passes, see ``FrameDetections.ranked``) decides
   the order instead, so ``--person 0`` is the same person however many people are detected.
4. **Filling.** Joints below ``min_score`` or in frames where the track has no detection are
   flagged in ``valid`` and linearly interpolated over time (held at the ends); a clip where the
   person is missing from most frames is refused. A detector that places hidden joints
   (``FrameDetections.places_hidden``: MediaPipe, whose score is visibility) keeps its own
   positions for them, and only frames without a detection are interpolated: its estimate of an
   arm behind the body follows the body, where a straight line across a long occlusion does not
   (on the 4-camera recording, ``benchmarks/multiview_accuracy.py``, the woman's forearm seen from
   behind by cam01: 69 degrees off with interpolation, 37 with MediaPipe's own estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from converters.errors import ConversionError
from converters.joints import joint_set
from converters.types import Keypoints2D
from vp3d_engine.detectors.types import FrameDetections

__all__ = ["MAX_PEOPLE", "TrackResult", "build_tracks", "track_people", "track_person"]

#: The most people ``--person all`` converts (those seen most, in ``--person N`` order): ``--person``
#: numbers 0 to 9.
MAX_PEOPLE = 10


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


def _pose_distance(last_people: np.ndarray, people: np.ndarray, diag: np.ndarray, min_score: float) -> np.ndarray:
    """Mean distance between the keypoints both poses saw with confidence, in box diagonals of the
    track: ``(tracks, people)``; 0 where no keypoint is shared (nothing to compare)."""
    both = (last_people[:, None, :, 2] >= min_score) & (people[None, :, :, 2] >= min_score)
    dist = np.linalg.norm(last_people[:, None, :, :2] - people[None, :, :, :2], axis=-1)
    mean = (dist * both).sum(-1) / np.maximum(both.sum(-1), 1)
    return mean / np.maximum(diag, 1e-6)


def _link_scores(last_frames: np.ndarray, last_people: np.ndarray, t: int, people: np.ndarray,
                 min_score: float, min_iou: float, max_scale: float) -> np.ndarray:
    """How well each detected person continues each track (0: not at all).

    A track continues with a pose that overlaps the box it was last seen in (``iou`` at least
    ``min_iou``) and is shaped like its last pose (keypoints within a quarter of a box diagonal on
    average, more after a gap), at a size within twice ``max_scale``; more overlap, a closer pose
    and a more recent sighting link better. Without overlap, a track missing for a few frames may
    still continue near where it was (centre within one box diagonal) at a similar size (within
    ``max_scale``): a person the detector dropped for a moment. A pose much smaller or larger, far
    away, or of another shape (someone else passing in front) never continues a track."""
    last_boxes, boxes = _boxes(last_people, min_score), _boxes(people, min_score)
    iou = _iou(last_boxes, boxes)
    gap = (t - last_frames)[:, None].astype(np.float64)
    diag = np.hypot(last_boxes[:, 2] - last_boxes[:, 0], last_boxes[:, 3] - last_boxes[:, 1])[:, None]
    size = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[None, :]
    scale = np.maximum(size, 1e-6) / np.maximum(diag, 1e-6)
    similar = (scale <= max_scale) & (scale >= 1.0 / max_scale)
    pose = _pose_distance(last_people, people, diag, min_score)
    shaped = pose <= np.minimum(0.25 + 0.05 * (gap - 1), 0.6)
    centre = lambda r: (r[:, :2] + r[:, 2:]) / 2  # noqa: E731
    dist = np.linalg.norm(centre(last_boxes)[:, None] - centre(boxes)[None, :], axis=-1)
    overlap = np.where((iou >= min_iou) & shaped & (scale <= 2 * max_scale) & (scale >= 0.5 / max_scale),
                       iou + 2.0 - pose - 0.01 * gap, 0.0)
    near = np.where((gap > 1) & (dist < diag) & similar, 0.5 * (1.0 - dist / np.maximum(diag, 1e-6)), 0.0)
    return np.maximum(overlap, near)


def build_tracks(dets: FrameDetections, min_score: float = 0.3, min_iou: float = 0.2, max_gap: int = 30,
                 max_scale: float = 1.6) -> list[dict[int, int]]:
    """Tracks as ``{frame: person index in that frame}``.

    Every frame's people are matched (Hungarian assignment on :func:`_link_scores`) against every
    track seen in the last ``max_gap`` frames, not only the previous frame's: when the detector
    jumps to someone else for a few frames (one pose per frame, as many tools write), those frames
    start a short track of their own and the subject's track continues when it comes back, with
    the frames in between missing (filled later). A track ends when its person has been gone for
    more than ``max_gap`` frames. A detector that follows people (``dets.identities``) decides first:
    a person with an identity continues that identity's track; the others are matched as above."""
    tracks: list[dict[int, int]] = []
    k_joints = joint_set(dets.format).size
    last_frames = np.zeros(0, dtype=np.int64)
    last_people = np.zeros((0, k_joints, 3))
    by_identity: dict[int, int] = {}  # the detector's identity -> track
    for t, people in enumerate(dets.people):
        if not len(people):
            continue
        ids = dets.identities[t] if dets.identities is not None else np.full(len(people), -1)
        assigned = {i: by_identity[int(d)] for i, d in enumerate(ids)
                    if int(d) in by_identity and t - last_frames[by_identity[int(d)]] <= max_gap}
        live = np.array([k for k in np.flatnonzero(t - last_frames <= max_gap) if k not in assigned.values()],
                        np.int64)
        rest = [i for i in range(len(people)) if i not in assigned]
        if live.size and rest:
            score = _link_scores(last_frames[live], last_people[live], t, people[rest], min_score, min_iou,
                                 max_scale)
            rows, cols = linear_sum_assignment(-score)
            assigned |= {rest[c]: int(live[r]) for r, c in zip(rows, cols, strict=True) if score[r, c] > 0}
        for i in range(len(people)):
            k = assigned.get(i)
            if k is None:
                k = len(tracks)
                tracks.append({})
                last_frames = np.append(last_frames, t)
                last_people = np.concatenate([last_people, people[i][None]])
            tracks[k][t] = i
            last_frames[k], last_people[k] = t, people[i]
            if ids[i] >= 0:
                by_identity[int(ids[i])] = k
    return [_drop_spikes(track, dets, min_score, max_scale) for track in tracks]


def _drop_spikes(track: dict[int, int], dets: FrameDetections, min_score: float, max_scale: float,
                 window: int = 5) -> dict[int, int]:
    """Remove single frames whose pose jumps away from the track and back (a swap to an overlapping
    person): box size beyond ``max_scale`` of, or centre more than half a box diagonal from, the
    median of the track's other frames within ``window`` frames on either side."""
    frames = np.array(sorted(track))
    if frames.size < 5:
        return track
    boxes = np.stack([_boxes(dets.people[t][track[t]][None], min_score)[0] for t in frames])
    diag = np.maximum(np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1e-6)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    keep = dict(track)
    for n, t in enumerate(frames):
        near = np.flatnonzero((np.abs(frames - t) <= window) & (frames != t))
        if near.size < 2:
            continue
        ref_diag = float(np.median(diag[near]))
        jump = np.linalg.norm(centre[n] - np.median(centre[near], axis=0))
        if abs(np.log(diag[n] / ref_diag)) > np.log(max_scale) or jump > 0.5 * ref_diag:
            del keep[int(t)]
    return keep


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


def _ordered_tracks(dets: FrameDetections, min_score: float) -> list[dict[int, int]]:
    """Every track, in the order ``--person N`` numbers people: the detector's own ranking when it
    ranks people, else the track weight (large and confident for long first)."""
    tracks = build_tracks(dets, min_score=min_score)
    if not tracks:
        raise ConversionError(f"no person was detected in any of the {dets.num_frames} frames; is a person fully "
                              "visible?")
    if dets.ranked:  # the detector's own order first (its mean place in the frames' lists), then weight
        tracks.sort(key=lambda tr: (round(float(np.mean(list(tr.values())))), -_track_weight(tr, dets, min_score)))
    else:
        tracks.sort(key=lambda tr: _track_weight(tr, dets, min_score), reverse=True)
    return tracks


def track_person(dets: FrameDetections, image_size: tuple[int, int], fps: float, person: int = 0,
                 min_score: float = 0.3, min_presence: float = 0.5) -> TrackResult:
    """Pick one person (``person=0``: the main subject) and return clean, gap-filled keypoints."""
    if dets.num_frames == 0:
        raise ConversionError("no frames to track a person in")
    tracks = _ordered_tracks(dets, min_score)
    if not 0 <= person < len(tracks):
        found = "1 person was tracked (--person 0)" if len(tracks) == 1 else \
            f"{len(tracks)} people were tracked (--person 0 to {len(tracks) - 1})"
        raise ConversionError(f"--person {person} asked for, but only {found}")
    result = _track_result(dets, tracks[person], image_size, fps, person, len(tracks), min_score)
    if result.frames_present < min_presence:
        raise ConversionError(
            f"the person is missing from {1 - result.frames_present:.0%} of the frames; trim the clip to where the "
            "person is visible (--start/--end) or check that the whole body is in view")
    return result


def track_people(dets: FrameDetections, image_size: tuple[int, int], fps: float, min_presence: float = 0.3,
                 min_score: float = 0.3) -> list[TrackResult]:
    """Everyone seen in at least ``min_presence`` of the frames, in ``--person N`` order (the
    ``N`` of each is in its keypoints' ``meta["person"]``), each clean and gap-filled. People whose
    body was never seen whole (a head at the edge of the frame) are left out."""
    if dets.num_frames == 0:
        raise ConversionError("no frames to track a person in")
    tracks = _ordered_tracks(dets, min_score)
    people: list[TrackResult] = []
    for n, track in enumerate(tracks[:MAX_PEOPLE]):  # numbered as --person N numbers them: 0 to 9
        if len(track) < min_presence * dets.num_frames:
            continue
        try:
            people.append(_track_result(dets, track, image_size, fps, n, len(tracks), min_score))
        except ConversionError:  # part of a body only: not a person to animate
            continue
    if not people:
        longest = max(len(tr) for tr in tracks) / dets.num_frames
        raise ConversionError(f"nobody is seen whole in at least {min_presence:.0%} of the frames (the most seen "
                              f"person: {longest:.0%}); lower --min-presence, or trim the clip (--start/--end)")
    return people


def _track_result(dets: FrameDetections, track: dict[int, int], image_size: tuple[int, int], fps: float,
                  person: int, tracks_found: int, min_score: float) -> TrackResult:
    """One track's keypoints over the whole clip, its gaps and unsure joints filled."""
    t = dets.num_frames
    k = dets.people[next(iter(track))].shape[1]
    raw = np.zeros((t, k, 3))
    present = np.zeros(t, dtype=bool)
    for frame, i in track.items():
        raw[frame] = dets.people[frame][i]
        present[frame] = True
    presence = float(present.mean())
    times = dets.timestamps if dets.timestamps is not None else np.arange(t) / fps
    valid = present[:, None] & (raw[:, :, 2] >= min_score)
    never = ~valid.any(axis=0)
    body_never = [k for k in np.flatnonzero(never) if k >= _FIRST_BODY_JOINT]
    if body_never:
        names = ", ".join(joint_set(dets.format).names[k] for k in body_never)
        raise ConversionError(f"{names} never seen with confidence; is the whole body in view?")
    placed = present[:, None] & np.ones_like(valid) if dets.places_hidden else valid
    xy = _fill(raw[:, :, :2], placed, times)
    if never.any():
        xy = _place_unseen_face(xy, never)
    kp = Keypoints2D(xy=xy, score=np.where(present[:, None], raw[:, :, 2], 0.0), valid=valid, format=dets.format,
                     image_size=image_size, fps=fps, timestamps=times.astype(np.float64),
                     meta={"tracks_found": tracks_found, "person": person, "hidden_joints_placed": dets.places_hidden})
    return TrackResult(keypoints=kp, frames_present=presence, joints_filled=float(1 - placed.mean()),
                       tracks_found=tracks_found)
