"""Left/right label swaps of the 2D detector, found from the lifted body's facing direction.

A 2D detector sometimes labels a whole body mirrored (left for right) for a stretch of frames:
MediaPipe does it on 17.6% of the frames of each view of the shared 4-camera recording, in whole
episodes that begin where the person is seen from the side (``benchmarks/multiview_accuracy.py``).
The lifter then turns the body round: the facing direction of the lifted torso flips by half a
turn within a few frames, and flips back when the labels come right. A person does not turn half
way round in 0.15 s, so such a flip marks an episode's end, when the 2D shows it too: there the
labelled points jump to where the other side's were a frame before (left and right trade places;
a real turn moves them continuously, and the lifter alone can also snap round as a person turns
through a side view). The frames between two such flips are relabelled (of the two ways to do
that, the one that relabels fewer frames), lifted again, and the result is kept only if it has
fewer flips. A clip that is mirrored from its first frame to its last has no flip to find, and
stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from converters.joints import COCO17, H36M17
from converters.types import Keypoints2D

__all__ = ["FLIP_DEGREES", "FLIP_SECONDS", "facing", "fix_label_swaps", "flips", "label_jumps"]

#: A turn of more than FLIP_DEGREES within FLIP_SECONDS (about 800 degrees a second) is a label flip.
FLIP_DEGREES = 120.0
FLIP_SECONDS = 0.15

_H = {n: H36M17.index(n) for n in ("pelvis", "thorax", "left_hip", "right_hip", "left_shoulder", "right_shoulder")}


def facing(joints: np.ndarray) -> np.ndarray:
    """Unit facing direction per frame of H36M-17 ``joints (T,17,3)``: the torso's up crossed with
    its right-to-left direction (hips and shoulders together)."""
    across = (joints[:, _H["left_hip"]] - joints[:, _H["right_hip"]]
              + joints[:, _H["left_shoulder"]] - joints[:, _H["right_shoulder"]])
    up = joints[:, _H["thorax"]] - joints[:, _H["pelvis"]]
    f = np.cross(up, across)
    return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-9)


def flips(joints: np.ndarray, fps: float) -> list[int]:
    """Frames where the facing direction turns by more than FLIP_DEGREES within FLIP_SECONDS
    (one frame per run of such frames, its middle)."""
    f = facing(joints)
    t = len(f)
    half = max(1, round(FLIP_SECONDS * fps / 2))
    before, after = f[np.clip(np.arange(t) - half, 0, t - 1)], f[np.clip(np.arange(t) + half, 0, t - 1)]
    turned = np.degrees(np.arccos(np.clip((before * after).sum(-1), -1.0, 1.0))) > FLIP_DEGREES
    out, start = [], None
    for i, on in enumerate([*turned, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            out.append((start + i) // 2)
            start = None
    return out


_SIDES = (COCO17.left[2:], COCO17.right[2:])  # shoulders to ankles (the face points are too close)


def label_jumps(xy: np.ndarray) -> np.ndarray:
    """``(T,)``: true where the body's left and right points of frame t sit where the other
    side's were at frame t-1 (a label swap), clearly: swapped, the points move less than half as
    far, and at least 3% of the body's size each."""
    left, right = np.asarray(_SIDES[0]), np.asarray(_SIDES[1])
    prev, cur = xy[:-1], xy[1:]

    def moved(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.norm(cur[:, a] - prev[:, b], axis=-1).sum(-1))

    keep = moved(left, left) + moved(right, right)
    swap = moved(left, right) + moved(right, left)
    size = np.ptp(xy[..., 1], axis=-1)[1:]
    jump = (swap < 0.5 * keep) & (keep - swap > 0.03 * size * 2 * left.size)
    return np.r_[False, jump]


def _mirror(kp: Keypoints2D, frames: np.ndarray) -> Keypoints2D:
    perm = COCO17.flip_permutation()
    sel = frames[:, None]
    return replace(kp, xy=np.where(sel[..., None], kp.xy[:, perm], kp.xy),
                   score=np.where(sel, kp.score[:, perm], kp.score), valid=np.where(sel, kp.valid[:, perm], kp.valid))


def fix_label_swaps(kp: Keypoints2D, joints: np.ndarray, lift: Callable[[Keypoints2D], np.ndarray]
                    ) -> tuple[Keypoints2D, np.ndarray, np.ndarray] | None:
    """``kp`` with the labels of mirrored episodes put right, the joints lifted from them and the
    frames relabelled; None when nothing was found (or relabelling did not remove flips).
    ``joints (T,17,3)``: what ``lift(kp)`` gave."""
    jumps = np.flatnonzero(label_jumps(kp.xy))
    reach = max(1, round(FLIP_SECONDS * kp.fps / 2)) + 1
    before = flips(joints, kp.fps)
    found = [f for f in before if jumps.size and np.abs(jumps - f).min() <= reach]
    if not found:
        return None
    t = kp.num_frames
    bounds = [0, *found, t]
    odd = np.zeros(t, dtype=bool)
    for i in range(1, len(bounds) - 1, 2):
        odd[bounds[i]:bounds[i + 1]] = True
    frames = odd if odd.sum() <= t - odd.sum() else ~odd
    fixed = _mirror(kp, frames)
    again = lift(fixed)
    if len(flips(again, kp.fps)) >= len(before):
        return None
    return fixed, again, frames
