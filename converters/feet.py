"""Planted feet: lock each foot while it is on the floor, keep every foot above it (numpy only).

Works on world joints (H36M-17, Y up, metres, floor at y = 0) whose bones keep one length over
the clip (:func:`rigid_joints`), so that the rig solved from them reproduces the positions:

1. Targets. During each contact run a foot's ankle is held at one point: the median of where it
   was over the run, on the floor (``ankle_height``). The hold is blended in over ``blend_s``
   before the run and out after it with a smooth step, so nothing pops. Outside contacts an
   ankle below ``ankle_height`` is lifted to it (no foot through the floor).
2. Root. Where a target lies beyond what the leg can reach from its hip, the whole body is moved
   towards it (the shortfall, smoothed over time): the root absorbs what the legs cannot.
3. Legs. Two-bone IK per leg: hip fixed, thigh and shin keep their lengths, the ankle goes to the
   target, and the knee stays in the plane it bent in (its original side of the hip-ankle line).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converters.joints import H36M17

__all__ = ["FEET_MODES", "FootLocking", "lock_feet", "rigid_joints"]

FEET_MODES = ("lock", "off")
_LEGS = tuple(tuple(H36M17.index(f"{side}_{part}") for part in ("hip", "knee", "ankle")) for side in ("left", "right"))


@dataclass(frozen=True)
class FootLocking:
    ankle_height: float = 0.08
    blend_s: float = 0.15
    reach: float = 0.999  # of the leg's full length: a straight knee flips its bend direction
    root_smooth_s: float = 0.05


def rigid_joints(joints: np.ndarray, fps: float) -> np.ndarray:
    """``joints (T,17,3)`` with every bone at one length (left and right alike) and the hips fixed
    in the pelvis's frame: the positions of the H36M rig solved from them. A rig solved from the
    result reproduces it, so edits made to it (locked feet) survive solving."""
    from converters.motion import forward_kinematics
    from converters.solve import solve

    return forward_kinematics(solve(joints, fps, "h36m"))[0]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _targets(ankle: np.ndarray, contact: np.ndarray, fps: float, s: FootLocking) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the held ankle point ``(T,3)`` and its blend weight ``(T,)`` for one foot."""
    t = len(ankle)
    weight = np.zeros(t)
    target = ankle.copy()
    ramp = max(1.0, s.blend_s * fps)
    frames = np.arange(t)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], contact.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        point = np.median(ankle[start:stop], axis=0)
        point[1] = s.ankle_height
        # 1 inside the run, falling to 0 over ``ramp`` frames on either side
        distance = np.maximum(start - frames, frames - (stop - 1)).clip(min=0)
        w = _smoothstep(1.0 - distance / ramp)
        nearer = w > weight
        target[nearer], weight[nearer] = point, w[nearer]
    return target, weight


def _rotate_towards(v: np.ndarray, axis_from: np.ndarray, axis_to: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (N,3)`` by the smallest rotation taking unit ``axis_from`` to ``axis_to``."""
    cross = np.cross(axis_from, axis_to)
    cos = np.sum(axis_from * axis_to, axis=-1, keepdims=True)
    # Rodrigues with k = cross / |cross|, sin = |cross|: v cos + (cross x v) + cross (cross.v) / (1 + cos)
    return v * cos + np.cross(cross, v) + cross * np.sum(cross * v, axis=-1, keepdims=True) / np.maximum(1 + cos, 1e-9)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _two_bone(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, goal: np.ndarray, reach: float,
              ) -> tuple[np.ndarray, np.ndarray]:
    """New knee and ankle ``(N,3)`` with the hip fixed, bone lengths kept, the ankle as near ``goal``
    as the leg reaches, the knee on its side of the hip-ankle line."""
    upper = np.linalg.norm(knee - hip, axis=-1, keepdims=True)
    lower = np.linalg.norm(ankle - knee, axis=-1, keepdims=True)
    axis = _unit(goal - hip)
    span = np.linalg.norm(goal - hip, axis=-1, keepdims=True)
    span = np.clip(span, np.abs(upper - lower) + 1e-6, reach * (upper + lower))
    # the bend: the knee's offset from the old hip-ankle line, turned with that line onto the new one
    old_axis = _unit(ankle - hip)
    bend = (knee - hip) - np.sum((knee - hip) * old_axis, axis=-1, keepdims=True) * old_axis
    bend = _rotate_towards(bend, old_axis, axis)
    bend = bend - np.sum(bend * axis, axis=-1, keepdims=True) * axis
    small = np.linalg.norm(bend, axis=-1) < 1e-6  # straight leg: bend forward (+Z turned with the body)
    if small.any():
        fallback = np.cross(axis[small], np.cross([0.0, 0.0, 1.0], axis[small]))
        bend[small] = fallback
    bend = _unit(bend)
    cos_hip = np.clip((upper**2 + span**2 - lower**2) / (2 * upper * span), -1.0, 1.0)
    new_knee = hip + upper * (cos_hip * axis + np.sqrt(1 - cos_hip**2) * bend)
    return new_knee, hip + span * axis


def lock_feet(joints: np.ndarray, contacts: np.ndarray, fps: float, settings: FootLocking | None = None,
              ) -> tuple[np.ndarray, dict[str, float]]:
    """``joints (T,17,3)`` (world, rigid bones) with planted feet held and no ankle below the floor,
    and figures: how far the root and the ankles were moved (mean, metres)."""
    from scipy.ndimage import gaussian_filter1d

    s = settings or FootLocking()
    out = joints.astype(np.float64).copy()
    goals = []
    for (_, _, ankle), contact in zip(_LEGS, contacts.T, strict=True):
        target, weight = _targets(out[:, ankle], contact, fps, s)
        goal = out[:, ankle] + weight[:, None] * (target - out[:, ankle])
        goal[:, 1] = np.maximum(goal[:, 1], s.ankle_height)
        goals.append(goal)
    # The root moves the body where a leg cannot reach its goal.
    shift = np.zeros((len(out), 3))
    for (hip, knee, ankle), goal in zip(_LEGS, goals, strict=True):
        length = np.linalg.norm(out[:, knee] - out[:, hip], axis=-1) + np.linalg.norm(out[:, ankle] - out[:, knee],
                                                                                     axis=-1)
        away = goal - out[:, hip]
        distance = np.linalg.norm(away, axis=-1)
        short = np.maximum(distance - s.reach * length, 0.0)
        step = _unit(away) * short[:, None]
        shift = np.where(np.abs(step) > np.abs(shift), step, shift)  # the larger need per axis
    if len(out) > 1:
        shift = gaussian_filter1d(shift, sigma=max(s.root_smooth_s * fps, 1e-3), axis=0, mode="nearest")
    out += shift[:, None]
    moved = []
    for (hip, knee, ankle), goal in zip(_LEGS, goals, strict=True):
        before = out[:, ankle].copy()
        out[:, knee], out[:, ankle] = _two_bone(out[:, hip], out[:, knee], out[:, ankle], goal, s.reach)
        moved.append(np.linalg.norm(out[:, ankle] - before, axis=-1).mean())
    figures = {"root_shift_m": round(float(np.linalg.norm(shift, axis=-1).mean()), 4),
               "ankle_shift_m": round(float(np.mean(moved)), 4)}
    return out, figures
