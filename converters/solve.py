"""Solve joint rotations from H36M-17 joint positions onto a T-pose rig preset (numpy, vectorised).

The target joints of a preset (:mod:`converters.rigs`) are placed on the H36M joints (extra spine
bones and the head joint as fixed blends of them). Every aiming joint gets a full orientation from
two directions, the bone itself (``primary``) and a second, non-parallel one (``secondary``, from
its twist rule), matched to the same two directions in the rest pose:
``R_world = F_observed @ F_rest^T`` with ``F = [a, b', a x b']`` (``b'`` is ``b`` made orthogonal
to ``a``). Bones therefore point exactly where the joints say, and forward kinematics reproduces
the joints up to bone-length normalisation.

Twist of two-bone limbs comes from the plane they bend in (``thigh x shin``, ``upper x fore``), so
a limb cannot spin about its own axis between frames. As a limb straightens that plane becomes
noise, so the hinge fades (by the sine of the bend, full weight from 20 degrees) into the rest
hinge carried along by the limb's swing from its rest direction; below 20 degrees the bending plane
is kept on that axis's side (knees bend back, elbows forward), so straight, hanging or slightly
over-extended limbs never flip, while a clear bend always uses the true hinge (so a twisted upper
limb is solved as twisted, not as a backwards-bent joint). The head's roll and turn come the same
way from the plane of thorax, neck/nose and head top, falling back to the chest's left axis.

Rest offsets come from the sequence: median bone lengths, left and right averaged; joints that are
not their parent's aim (hips, shoulders, clavicles) where they are seen in the parent's frame,
mirrored to agree. The rest pose is a T-pose (Y up, facing +Z, arms along +-X). Quaternions are
made sign-continuous over time.

The work is memory-bound, so arrays are kept per joint and component-major: a vector is ``(3,T)``
and a rotation ``(3,3,T)``, every component contiguous over time (``benchmarks/solver_speed.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from converters.errors import ConversionError
from converters.joints import H36M17
from converters.motion import Motion, Rig, continuous_quaternions, shepperd_quaternions
from converters.rigs import JointSpec, Weights, preset

__all__ = ["build_rig", "solve", "world_rotations"]

_X, _Y, _Z = (np.eye(3)[i][:, None] for i in range(3))  # (3,1): broadcast against (3,T)
_FULL_HINGE_SINE = np.sin(np.radians(20.0))
_MIRROR = np.array([-1.0, 1.0, 1.0])


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(0)


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(_dot(v, v))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(_norm(v), 1e-12)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _frames(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames ``(3,3,T)`` whose columns are a, b', a x b'. Degenerate input (a bone
    of zero length, a secondary along the bone) still gives a proper rotation, an arbitrary one."""
    a, secondary = np.broadcast_arrays(primary, secondary)
    a = np.where(_norm(a) < 1e-9, _Y, a)
    a = _unit(a)
    b = secondary - a * _dot(a, secondary)
    short = _norm(b) < 1e-9
    if short.any():
        other = np.where(np.abs(a[0]) < 0.9, _X, _Z)
        b = np.where(short, other - a * _dot(a, other), b)
    b = _unit(b)
    return np.stack([a, b, _cross(a, b)], axis=1)


def _times_rest(frames: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``frames @ rest^T`` for frames ``(3,3,T)`` and one rest frame ``(3,3,1)``."""
    return (frames[:, :, None] * rest[:, :, 0].T[None, :, :, None]).sum(1)


def _apply(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``m @ v`` for rotations ``(3,3,T)`` and vectors ``(3,T)`` or ``(3,1)``."""
    return (m * v[None]).sum(1)


def _transpose_times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^T @ b`` for rotations ``(3,3,T)``."""
    return (a[:, :, None] * b[:, None]).sum(0)


def _rotate_by_swing(a: np.ndarray, b: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v`` turned by the smallest rotations taking unit vectors ``a`` onto ``b`` (Rodrigues,
    applied to the vector directly)."""
    axis = _cross(a, b)
    across = _cross(axis, v)
    return v + across + _cross(axis, across) / np.maximum(1 + _dot(a, b), 1e-6)


def _head_left(head_up: np.ndarray, nose: np.ndarray, chest_left: np.ndarray) -> np.ndarray:
    """The head's left axis from the plane of thorax, neck/nose and head top (``head_up x nose``
    with ``nose`` the thorax-to-nose direction). A head turns less than 90 degrees from the chest,
    so the axis is always taken on the chest's side; it fades into the chest's axis as the three
    points line up."""
    n = _cross(head_up, nose) / np.maximum(_norm(head_up) * _norm(nose), 1e-12)
    sine = _norm(n)
    n = n / np.maximum(sine, 1e-12)
    agreement = _dot(n, chest_left)
    n = np.where(agreement < 0, -n, n)
    # Across the chest's axis (the head turned 90 degrees, or a neck bent far sideways) the side is
    # a guess: there the chest's axis takes over, so the head turns through it, never flips.
    w = np.clip(sine / _FULL_HINGE_SINE, 0.0, 1.0) * np.clip(np.abs(agreement) / 0.3, 0.0, 1.0)
    return _unit(w * n + (1 - w) * chest_left)


def _limb_hinge(upper: np.ndarray, lower: np.ndarray, parent_world: np.ndarray, rest_dir: np.ndarray,
                rest_hinge: np.ndarray) -> np.ndarray:
    """Hinge axis ``(3,T)`` of a two-bone limb (knee, elbow) over a whole sequence.

    Where the limb is clearly bent (from 20 degrees) the bending plane gives the axis: knees and
    elbows bend one way only, and the upper limb may be twisted far from any fixed reference (arms
    up like goalposts). Where it is nearly straight the plane is noise, so the axis of the nearest
    clearly bent frames is carried over (in the parent's frame, along the limb's swing since then,
    blended between the frames before and after); a limb never clearly bent carries its rest hinge
    along its swing from the rest direction. The measured plane, its sign matched to that carried
    axis, fades in with the bend, so the twist is continuous as a limb straightens and bends again.
    """
    n = _cross(upper, lower) / np.maximum(_norm(upper) * _norm(lower), 1e-12)
    sine = _norm(n)
    n = n / np.maximum(sine, 1e-12)
    to_local = np.swapaxes(parent_world, 0, 1)
    bone = _unit(_apply(to_local, upper))  # the upper bone in the parent's frame
    rest = _rotate_by_swing(np.broadcast_to(rest_dir, bone.shape), bone, np.broadcast_to(rest_hinge, bone.shape))
    bent = sine >= _FULL_HINGE_SINE
    if bent.any():
        t = bent.size
        frames = np.arange(t)
        before = np.maximum.accumulate(np.where(bent, frames, -1))
        after = np.minimum.accumulate(np.where(bent, frames, t)[::-1])[::-1]
        before = np.where(before < 0, after, before)
        after = np.where(after >= t, before, after)
        span = np.maximum(after - before, 1)
        share = np.clip((frames - before) / span, 0.0, 1.0)
        axis = _apply(to_local, n)
        carried = ((1 - share) * _rotate_by_swing(bone[:, before], bone, axis[:, before])
                   + share * _rotate_by_swing(bone[:, after], bone, axis[:, after]))
        # Where the two carried axes cancel (a straight limb twisted half a turn), the rest hinge.
        strength = np.clip(_norm(carried) / 0.5, 0.0, 1.0)
        reference = _unit(strength * _unit(carried) + (1 - strength) * rest)
    else:
        reference = rest
    reference = _apply(parent_world, reference)
    agreement = _dot(n, reference)
    n = np.where(~bent & (agreement < 0), -n, n)
    # A slight bend across the carried axis has no trustworthy side: it counts for less.
    w = np.clip(sine / _FULL_HINGE_SINE, 0.0, 1.0) * np.where(bent, 1.0, np.abs(agreement))
    return _unit(w * n + (1 - w) * reference)


_FOOT_MAX_FLEX = np.radians(60.0)


def _foot(shin: np.ndarray) -> np.ndarray:
    """Feet ``(3,3,T)``: the shin's orientation turned about the knee's hinge axis until the foot
    lies level along its length (its sole down), as far as 60 degrees of ankle flexion. As the shin
    leans from 60 to 90 degrees from vertical (a heel kick, kneeling, lying down) the foot eases into the
    shin's own orientation (pointed toes), so it never turns round."""
    up = shin[1]  # world up in the shin's frame (rows are the world axes)
    flex = np.clip(np.arctan2(up[2], up[1]), -_FOOT_MAX_FLEX, _FOOT_MAX_FLEX) * np.clip(up[1] / 0.5, 0.0, 1.0)
    c, s = np.cos(flex), np.sin(flex)
    return np.stack([shin[:, 0], c * shin[:, 1] + s * shin[:, 2], c * shin[:, 2] - s * shin[:, 1]], axis=1)


class _Solver:
    """Targets and world rotations of one preset on one sequence of joints."""

    def __init__(self, joints: np.ndarray, specs: Sequence[JointSpec]) -> None:
        if joints.ndim != 3 or joints.shape[1:] != (17, 3) or joints.shape[0] < 1:
            raise ConversionError(f"rotation solving needs H36M-17 joints shaped (T,17,3), not {joints.shape}")
        if not np.isfinite(joints).all():
            raise ConversionError("joint positions contain NaN or infinite values; fill or drop those frames first")
        self.frames = joints.shape[0]
        self.specs = specs
        self.index = {s.name: k for k, s in enumerate(specs)}
        self.parents = np.array([self.index[s.parent] if s.parent else -1 for s in specs])
        cm = np.ascontiguousarray(np.transpose(joints.astype(np.float64, copy=False), (1, 2, 0)))  # (17,3,T)
        self.j = dict(zip(H36M17.names, cm, strict=True))
        self._cache: dict[Weights, np.ndarray] = {}

    def _point(self, weights: Weights) -> np.ndarray:
        if weights not in self._cache:
            point = weights[0][1] * self.j[weights[0][0]]
            for name, w in weights[1:]:
                point = point + w * self.j[name]
            self._cache[weights] = point
        return self._cache[weights]

    def target(self, k: int) -> np.ndarray:
        at = self.specs[k].at
        if at is None:
            raise ConversionError(f"joint {self.specs[k].name} has no measured position")
        return self._point(at)

    def aim_point(self, k: int) -> np.ndarray:
        towards = self.specs[k].towards
        if isinstance(towards, str):
            return self.target(self.index[towards])
        if towards is None:
            raise ConversionError(f"joint {self.specs[k].name} aims nowhere")
        return self._point(towards)

    def world_rotations(self) -> list[np.ndarray]:
        """World rotations, one ``(3,3,T)`` array per joint (joints that keep their parent's
        orientation share its array)."""
        j, specs = self.j, self.specs
        identity = np.broadcast_to(np.eye(3)[:, :, None], (3, 3, self.frames))
        world: list[np.ndarray] = []
        secondary: dict[int, np.ndarray] = {}
        named: dict[str, np.ndarray] = {
            "hips": _unit(j["left_hip"] - j["right_hip"]),
            "shoulders": _unit(j["left_shoulder"] - j["right_shoulder"]),
        }
        named["head"] = _head_left(j["head_top"] - j["neck_nose"], j["neck_nose"] - j["thorax"], named["shoulders"])

        def rule(name: str) -> np.ndarray:
            if name.startswith("mix:"):
                _, a, b, w = name.split(":")
                return _unit((1 - float(w)) * named[a] + float(w) * named[b])
            return named[name]

        for k, s in enumerate(specs):
            p = self.parents[k]
            parent_world = world[p] if p >= 0 else identity
            if s.orient == "parent":
                world.append(parent_world)
                continue
            if s.orient == "flat":
                world.append(_foot(parent_world))
                continue
            bone = self.aim_point(k) - self.target(k)
            rest_dir, rest_twist = np.asarray(s.rest_dir)[:, None], np.asarray(s.rest_twist)[:, None]
            if s.twist == "hinge":
                child = self.index[s.towards] if isinstance(s.towards, str) else -1
                lower = self.aim_point(child) - self.target(child)
                sec = _limb_hinge(bone, lower, parent_world, rest_dir, rest_twist)
            elif s.twist == "parent":
                sec = secondary[p]
            elif s.twist == "up":
                sec = parent_world[:, 1]
            else:
                sec = rule(s.twist)
            secondary[k] = sec
            world.append(_times_rest(_frames(bone, sec), _frames(rest_dir, rest_twist)))
        return world


def world_rotations(joints: np.ndarray, preset_name: str = "h36m") -> np.ndarray:
    """World rotation matrices ``(T,J,3,3)`` of every joint of ``preset_name``."""
    return np.moveaxis(np.stack(_Solver(joints, preset(preset_name)).world_rotations()), -1, 0)


def _rig_from(solver: _Solver, world: list[np.ndarray], name: str) -> Rig:
    specs, idx = solver.specs, solver.index
    lengths: dict[int, float] = {}
    seen: dict[int, np.ndarray] = {}
    for k, s in enumerate(specs):
        if isinstance(s.towards, tuple):
            lengths[len(specs) + k] = float(np.median(_norm(solver.aim_point(k) - solver.target(k))))
        p = solver.parents[k]
        if p < 0 or s.at is None:
            continue
        offset = solver.target(k) - solver.target(p)
        if specs[p].orient == "aim" and specs[p].towards == s.name:
            lengths[k] = float(np.median(_norm(offset)))
        else:  # seen in the parent's frame
            seen[k] = np.median((world[p] * offset[:, None]).sum(0), axis=-1)

    def paired(table: dict[int, float], k: int, key: int) -> float:
        m = specs[k].mirror
        return 0.5 * (table[key] + table[key - k + idx[m]]) if m else table[key]

    offsets = np.zeros((len(specs), 3))
    end_sites: dict[str, tuple[float, float, float]] = {}
    for k, s in enumerate(specs):
        p = solver.parents[k]
        if p < 0:
            continue
        if k in lengths:
            offsets[k] = np.asarray(specs[p].rest_dir) * paired(lengths, k, k)
        elif k in seen:
            mirrored = seen[idx[s.mirror]] * _MIRROR if s.mirror else seen[k]
            offsets[k] = 0.5 * (seen[k] + mirrored)
        else:
            # Unseen (toes): a fixed proportion of the parent's own bone.
            offsets[k] = np.asarray(s.offset or (0.0, 0.0, 0.0)) * np.linalg.norm(offsets[p])
    for k, s in enumerate(specs):
        if isinstance(s.towards, tuple):
            end_sites[s.name] = _vec(np.asarray(s.rest_dir) * paired(lengths, k, len(specs) + k))
        elif s.tip is not None:
            end_sites[s.name] = _vec(np.asarray(s.rest_dir) * s.tip * np.linalg.norm(offsets[k]))
    return Rig(names=tuple(s.name for s in specs), parents=solver.parents.copy(), rest_offsets=offsets,
               preset=name, end_sites=end_sites)


def _vec(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


def build_rig(joints: np.ndarray, preset_name: str = "h36m") -> Rig:
    """The rig of ``preset_name`` with bone lengths measured on ``joints (T,17,3)`` (left/right
    averaged); side joints sit where they are seen relative to their parent."""
    solver = _Solver(joints, preset(preset_name))
    return _rig_from(solver, solver.world_rotations(), preset_name)


def solve(joints: np.ndarray, fps: float, preset_name: str = "h36m", rig: Rig | None = None) -> Motion:
    """Rotations on rig ``preset_name`` reproducing ``joints (T,17,3)`` (world, Y up, metres).
    ``rig`` reuses bone lengths measured elsewhere (it must be of the same preset)."""
    solver = _Solver(joints, preset(preset_name))
    world = solver.world_rotations()
    if rig is None:
        rig = _rig_from(solver, world, preset_name)
    elif rig.preset != preset_name or len(rig.names) != len(solver.specs):
        raise ConversionError(f"the rig given is a {rig.preset!r} rig, not {preset_name!r}")
    rotations = np.empty((solver.frames, len(world), 4))
    for k, p in enumerate(solver.parents):
        if p >= 0 and world[k] is world[p]:  # keeps its parent's orientation
            rotations[:, k] = (1.0, 0.0, 0.0, 0.0)
            continue
        local = world[k] if p < 0 else _transpose_times(world[p], world[k])
        entries = (local[a, b] for a in range(3) for b in range(3))
        rotations[:, k] = continuous_quaternions(shepperd_quaternions(*entries))
    return Motion(rig=rig, rotations=rotations, root_translation=solver.target(0).T.copy(), fps=fps,
                  meta={"solver": "hinge-v2", "source_joints": "h36m17", "preset": preset_name})
