"""Maps from BVH motion-capture rigs to the joint sets the lifter uses.

A :class:`SkeletonMap` names, for one rig, the joints that stand for the body joints of H36M-17
(3D targets) and COCO-17 (2D inputs). What a mocap rig does not have is derived, and each such
approximation is documented here:

- **pelvis, hips, knees, ankles, shoulders, elbows, wrists**: the rig's joints of those names
  (joint centres; 2D detectors mark the hips a little lower and wider than mocap hip joints).
- **thorax** (H36M 8): midpoint of the two shoulder (upper-arm) joints.
- **spine** (H36M 7): the point halfway along the rig's spine chain, measured by arc length from
  the pelvis joint to the thorax.
- **head top, neck/nose, nose, eyes, ears**: fixed offsets in the head joint's frame. The frame's
  "up" axis is the median over the take of the neck-to-head direction seen from the head joint,
  its "forward" axis the median body-facing direction (from the shoulders and hips) seen from the
  head joint, made orthogonal; so the points follow every nod and turn of the head. Offsets are
  anatomical averages for an adult whose head joint sits at the base of the skull (true of both
  shipped rigs), scaled by the pelvis-to-head-joint distance over 0.47 m.

Maps are given for the Bandai Namco 22-joint rig and the CMU cgspeed 31-joint rig, plus a
name-based fallback (:func:`guess_skeleton_map`) for other rigs that follow common naming.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from converters.bvh import Bvh, forward_kinematics, infer_unit_scale
from converters.errors import ConfigurationError, InputFileError
from converters.joints import COCO17, H36M17

__all__ = [
    "BANDAI_NAMCO",
    "CMU_CGSPEED",
    "SKELETON_MAPS",
    "MocapJoints",
    "SkeletonMap",
    "guess_skeleton_map",
    "mocap_joints",
    "skeleton_map_for",
]

_BODY = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
    "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)

# Offsets from the head joint in its frame, metres: (up, forward, left), for a reference body
# whose pelvis-to-head-joint distance is _HEAD_REFERENCE_M.
_HEAD_REFERENCE_M = 0.47
_HEAD_POINTS: dict[str, tuple[float, float, float]] = {
    "head_top": (0.17, 0.02, 0.0),
    "neck_nose": (0.03, 0.06, 0.0),
    "nose": (0.05, 0.11, 0.0),
    "left_eye": (0.085, 0.085, 0.032),
    "right_eye": (0.085, 0.085, -0.032),
    "left_ear": (0.07, 0.0, 0.075),
    "right_ear": (0.07, 0.0, -0.075),
}


@dataclass(frozen=True)
class SkeletonMap:
    """Which rig joints stand for the body joints; ``body`` maps each name in ``_BODY`` to a rig
    joint name, ``spine_chain`` lists rig joints from the pelvis upward (used for H36M's spine),
    ``head`` and ``neck`` name the head joint and its parent side."""

    name: str
    body: dict[str, str]
    spine_chain: tuple[str, ...]
    head: str
    neck: str

    def joint_names(self) -> set[str]:
        return set(self.body.values()) | set(self.spine_chain) | {self.head, self.neck}


def _sided(left: str, right: str, **parts: str) -> dict[str, str]:
    out = {}
    for key, pattern in parts.items():
        out[f"left_{key}"] = pattern.format(s=left)
        out[f"right_{key}"] = pattern.format(s=right)
    return out


BANDAI_NAMCO = SkeletonMap(
    name="bandai_namco",
    body={
        "pelvis": "Hips",
        **_sided("L", "R", hip="UpperLeg_{s}", knee="LowerLeg_{s}", ankle="Foot_{s}",
                 shoulder="UpperArm_{s}", elbow="LowerArm_{s}", wrist="Hand_{s}"),
    },
    spine_chain=("Hips", "Spine", "Chest", "Neck"),
    head="Head",
    neck="Neck",
)

CMU_CGSPEED = SkeletonMap(
    name="cmu_cgspeed",
    body={
        "pelvis": "Hips",
        **_sided("Left", "Right", hip="{s}UpLeg", knee="{s}Leg", ankle="{s}Foot",
                 shoulder="{s}Arm", elbow="{s}ForeArm", wrist="{s}Hand"),
    },
    spine_chain=("Hips", "Spine", "Spine1", "Neck1"),
    head="Head",
    neck="Neck1",
)

SKELETON_MAPS: dict[str, SkeletonMap] = {m.name: m for m in (BANDAI_NAMCO, CMU_CGSPEED)}

# Name-based fallback: a name is split into words ("LowerLeg_L" -> lower, leg, l;
# "mixamorig:LeftForeArm" -> left, fore, arm); one word gives the side, the rest the part.
_SIDES = {"left": {"left", "l"}, "right": {"right", "r"}}
# Candidate part names in order of preference: where a rig has both "LeftArm" and "LeftShoulder"
# the latter is a clavicle (cgspeed, Mixamo), where it has only "LeftShoulder" it is the arm joint.
_PARTS: dict[str, tuple[str, ...]] = {
    "hip": ("upleg", "upperleg", "thigh", "femur", "hip"),
    "knee": ("leg", "lowerleg", "calf", "shin", "tibia", "knee"),
    "ankle": ("foot", "ankle"),
    "shoulder": ("arm", "upperarm", "humerus", "shoulder"),
    "elbow": ("forearm", "lowerarm", "elbow"),
    "wrist": ("hand", "wrist"),
}


def _words(name: str) -> list[str]:
    name = name.split(":")[-1]
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]


def guess_skeleton_map(bvh: Bvh) -> SkeletonMap:
    """Build a map from joint names alone (common Mixamo/CMU/Unreal-like naming)."""
    names = list(bvh.names)
    normed = ["".join(_words(n)) for n in names]
    parts: dict[tuple[str, str], str] = {}
    for raw in names:
        words = _words(raw)
        for side, side_words in _SIDES.items():
            hits = [i for i, w in enumerate(words) if w in side_words]
            if hits:
                parts.setdefault((side, "".join(w for i, w in enumerate(words) if i != hits[0])), raw)
    body: dict[str, str] = {}
    for side in _SIDES:
        for key, candidates in _PARTS.items():
            found = next((parts[(side, c)] for c in candidates if (side, c) in parts), None)
            if found is not None and found not in body.values():
                body[f"{side}_{key}"] = found
    # "root" last: in Unreal-style rigs it is a ground-level parent of the pelvis.
    pelvis = next((raw for cand in ("pelvis", "hips", "hip", "root")
                   for n, raw in zip(normed, names, strict=True) if n == cand), None)
    head = next((raw for n, raw in zip(normed, names, strict=True) if n == "head"), None)
    missing = [k for k in _BODY if k != "pelvis" and k not in body]
    if pelvis is None or head is None or missing:
        need = missing + (["pelvis"] if pelvis is None else []) + (["head"] if head is None else [])
        raise InputFileError(
            f"{bvh.path}: cannot recognise the rig's joints for {', '.join(need)} from their names "
            f"({', '.join(names[:8])}, ...); add a SkeletonMap for this rig in converters/skeleton_maps.py"
        )
    body["pelvis"] = pelvis
    chain = [head]
    while bvh.parents[bvh.index(chain[-1])] >= 0 and chain[-1] != pelvis:
        chain.append(bvh.names[bvh.parents[bvh.index(chain[-1])]])
    if chain[-1] != pelvis:
        raise InputFileError(f"{bvh.path}: the head joint {head!r} does not descend from {pelvis!r}")
    chain.reverse()
    return SkeletonMap(name="by_name", body=body, spine_chain=tuple(chain[:-1]), head=head, neck=chain[-2])


def skeleton_map_for(bvh: Bvh) -> SkeletonMap:
    """The shipped map whose joints all exist in ``bvh``, else the name-based guess."""
    present = set(bvh.names)
    for smap in SKELETON_MAPS.values():
        if smap.joint_names() <= present:
            return smap
    return guess_skeleton_map(bvh)


@dataclass(frozen=True)
class MocapJoints:
    """Joint positions derived from one mocap take, world space (Y up), metres.

    ``h36m (F,17,3)`` are the 3D targets, ``coco (F,17,3)`` the 3D points whose projections are
    the 2D inputs.
    """

    h36m: np.ndarray
    coco: np.ndarray
    fps: float
    source: str
    skeleton: str
    unit: str


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


def mocap_joints(bvh: Bvh, smap: SkeletonMap | None = None, unit: str | None = None) -> MocapJoints:
    """Derive H36M-17 and COCO-17 joints from a BVH take (see the module notes)."""
    from converters.bvh import UNIT_SCALES

    smap = smap or skeleton_map_for(bvh)
    if unit is None:
        unit, scale = infer_unit_scale(bvh)
    elif unit in UNIT_SCALES:
        scale = UNIT_SCALES[unit]
    else:
        raise ConfigurationError(f"unknown unit {unit!r}; known: {', '.join(UNIT_SCALES)}")
    missing = sorted(n for n in smap.joint_names() if n not in bvh.names)
    if missing:
        raise InputFileError(f"{bvh.path}: rig lacks joints {missing} needed by map {smap.name!r}")
    if bvh.num_frames == 0:
        raise InputFileError(f"{bvh.path}: the take has no frames")
    pos, rot = forward_kinematics(bvh, scale=scale)
    j = {key: pos[:, bvh.index(name)] for key, name in smap.body.items()}

    thorax = 0.5 * (j["left_shoulder"] + j["right_shoulder"])
    chain = np.stack([pos[:, bvh.index(n)] for n in smap.spine_chain] + [thorax], axis=1)
    spine = _point_along(chain, 0.5)

    head_idx, neck_idx = bvh.index(smap.head), bvh.index(smap.neck)
    head_pos, head_rot = pos[:, head_idx], rot[:, head_idx]
    world_up = _unit(head_pos - pos[:, neck_idx])
    across = (j["left_shoulder"] - j["right_shoulder"]) + (j["left_hip"] - j["right_hip"])
    facing = _unit(np.cross(across, world_up))
    to_local = np.swapaxes(head_rot, -1, -2)
    up_l = _unit(np.median(np.einsum("fab,fb->fa", to_local, world_up), axis=0))
    fwd_l = np.median(np.einsum("fab,fb->fa", to_local, facing), axis=0)
    fwd_l = _unit(fwd_l - up_l * np.dot(fwd_l, up_l))
    left_l = np.cross(up_l, fwd_l)
    size = float(np.median(np.linalg.norm(head_pos - j["pelvis"], axis=-1))) / _HEAD_REFERENCE_M
    head_pts = {}
    for key, (u, f, lft) in _HEAD_POINTS.items():
        local = size * (u * up_l + f * fwd_l + lft * left_l)
        head_pts[key] = head_pos + np.einsum("fab,b->fa", head_rot, local)

    h36m_src = {**j, "spine": spine, "thorax": thorax, **head_pts}
    h36m = np.stack([h36m_src[n] for n in H36M17.names], axis=1)
    coco = np.stack([h36m_src[n] for n in COCO17.names], axis=1)
    return MocapJoints(h36m=h36m, coco=coco, fps=bvh.fps, source=bvh.path, skeleton=smap.name, unit=unit)


def _point_along(chain: np.ndarray, fraction: float) -> np.ndarray:
    """Point at ``fraction`` of the arc length of polyline ``chain (F,N,3)``, per frame."""
    seg = np.linalg.norm(np.diff(chain, axis=1), axis=-1)
    cum = np.concatenate([np.zeros((chain.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)
    target = cum[:, -1:] * fraction
    k = np.clip((cum[:, 1:] < target).sum(axis=1), 0, seg.shape[1] - 1)
    rows = np.arange(chain.shape[0])
    t = (target[:, 0] - cum[rows, k]) / np.maximum(seg[rows, k], 1e-9)
    return chain[rows, k] + t[:, None] * (chain[rows, k + 1] - chain[rows, k])
