"""Solve joint rotations from H36M-17 joint positions onto a T-pose rig (numpy, vectorised).

Every joint that has a bone gets a full orientation from two directions, the bone itself
(``primary``) and a second, non-parallel one (``secondary``), matched to the same two directions
in the rest pose: ``R_world = F_observed @ F_rest^T`` with ``F = [a, b', a x b']`` (``b'`` is
``b`` made orthogonal to ``a``). The secondary directions:

- pelvis: hips (right to left); spine and thorax: shoulders (right to left);
  neck: the thorax's left axis (the H36M joints carry no face direction);
- thigh and shin: the knee's hinge axis ``thigh x shin``; upper arm and forearm: the elbow's
  ``upper x fore``. So a limb's twist comes from the plane it bends in and cannot spin about
  its own axis between frames. As a limb straightens the hinge fades (by the sine of the bend,
  full weight from 20 degrees) into the rest hinge carried along by the limb's swing from its
  rest direction; below 20 degrees the bending plane is kept on that axis's side (knees bend back,
  elbows forward), so straight, hanging or slightly over-extended limbs never flip, while a clear
  bend always uses the true hinge (so a twisted upper limb is solved as twisted, not as a
  backwards-bent joint).

Leaf joints (ankles, wrists, head top) keep their parent's orientation. Rest offsets come from
the sequence: median bone lengths, left and right averaged; hips and shoulders where they are seen
in the pelvis and thorax frames (mirrored to agree); the rest pose is a T-pose (Y up, facing +Z,
arms along +-X). Quaternions are made sign-continuous over time.
"""

from __future__ import annotations

import numpy as np

from converters.joints import H36M17
from converters.motion import Motion, Rig, continuous_quaternions, matrices_to_quaternions

__all__ = ["h36m_rig", "solve_h36m"]

_X, _Y = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
_I = {n: i for i, n in enumerate(H36M17.names)}
_FULL_HINGE_SINE = np.sin(np.radians(20.0))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _frames(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames ``(...,3,3)`` whose columns are a, b', a x b'."""
    a = _unit(primary)
    b = _unit(secondary - a * (a * secondary).sum(-1, keepdims=True))
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def _bone(joints: np.ndarray, a: str, b: str) -> np.ndarray:
    return np.median(np.linalg.norm(joints[:, _I[b]] - joints[:, _I[a]], axis=-1))


def _side_offsets(joints: np.ndarray, frame: np.ndarray, parent: str, joint: str) -> tuple[np.ndarray, ...]:
    """Left and right rest offsets of ``left_/right_{joint}`` from ``parent``: the median offset
    seen in the parent's frame, mirrored so both sides agree."""
    to_local = np.swapaxes(frame, -1, -2)
    left = np.median(np.einsum("tab,tb->ta", to_local, joints[:, _I[f"left_{joint}"]] - joints[:, _I[parent]]), 0)
    right = np.median(np.einsum("tab,tb->ta", to_local, joints[:, _I[f"right_{joint}"]] - joints[:, _I[parent]]), 0)
    mean = 0.5 * (left + right * [-1.0, 1.0, 1.0])
    return mean, mean * [-1.0, 1.0, 1.0]


def _torso_frames(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World rotations of the pelvis and thorax (they only depend on the joints, not the rig)."""
    j = {n: joints[:, i] for n, i in _I.items()}
    rest = _frames(_Y, _X).T
    pelvis = _frames(j["spine"] - j["pelvis"], j["left_hip"] - j["right_hip"]) @ rest
    thorax = _frames(j["neck_nose"] - j["thorax"], j["left_shoulder"] - j["right_shoulder"]) @ rest
    return pelvis, thorax


def h36m_rig(joints: np.ndarray) -> Rig:
    """The ``h36m`` rig with bone lengths measured on ``joints (T,17,3)`` (left/right averaged);
    hips and shoulders sit where they are seen relative to the pelvis and thorax."""
    def pair(a: str, b: str) -> float:
        return float(0.5 * (_bone(joints, f"left_{a}", f"left_{b}") + _bone(joints, f"right_{a}", f"right_{b}")))

    pelvis, thorax = _torso_frames(joints)
    left_hip, right_hip = _side_offsets(joints, pelvis, "pelvis", "hip")
    left_sho, right_sho = _side_offsets(joints, thorax, "thorax", "shoulder")
    thigh, shin = pair("hip", "knee"), pair("knee", "ankle")
    upper, fore = pair("shoulder", "elbow"), pair("elbow", "wrist")
    offsets = {
        "pelvis": (0, 0, 0), "right_hip": right_hip, "right_knee": (0, -thigh, 0), "right_ankle": (0, -shin, 0),
        "left_hip": left_hip, "left_knee": (0, -thigh, 0), "left_ankle": (0, -shin, 0),
        "spine": (0, _bone(joints, "pelvis", "spine"), 0), "thorax": (0, _bone(joints, "spine", "thorax"), 0),
        "neck_nose": (0, _bone(joints, "thorax", "neck_nose"), 0),
        "head_top": (0, _bone(joints, "neck_nose", "head_top"), 0),
        "left_shoulder": left_sho, "left_elbow": (upper, 0, 0), "left_wrist": (fore, 0, 0),
        "right_shoulder": right_sho, "right_elbow": (-upper, 0, 0), "right_wrist": (-fore, 0, 0),
    }
    return Rig(names=H36M17.names, parents=np.array(H36M17.parents),
               rest_offsets=np.array([offsets[n] for n in H36M17.names], dtype=np.float64), preset="h36m")


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations ``(T,3,3)`` turning unit vectors ``a`` into ``b`` (Rodrigues)."""
    v = np.cross(a, b)
    c = (a * b).sum(-1)[..., None, None]
    vx = np.zeros((*v.shape[:-1], 3, 3))
    vx[..., 0, 1], vx[..., 0, 2], vx[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    vx[..., 1, 0], vx[..., 2, 0], vx[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return np.eye(3) + vx + vx @ vx / np.maximum(1 + c, 1e-6)


def _carried_hinge(parent_world: np.ndarray, rest_dir: np.ndarray, rest_hinge: np.ndarray,
                   bone: np.ndarray) -> np.ndarray:
    """The rest hinge axis carried along by the limb's swing from its rest direction (in the
    parent's frame) to ``bone``: always perpendicular to the bone, so it decides the bending side
    reliably even where a fixed parent axis would lie along the limb (an arm hanging down)."""
    rest_world = parent_world @ rest_dir
    return np.einsum("tab,tb->ta", _swing(rest_world, _unit(bone)), parent_world @ rest_hinge)


def _hinge(upper: np.ndarray, lower: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Hinge axis of a two-bone limb, blended into ``fallback`` as the limb straightens."""
    n = np.cross(upper, lower) / np.maximum(
        np.linalg.norm(upper, axis=-1, keepdims=True) * np.linalg.norm(lower, axis=-1, keepdims=True), 1e-12)
    sine = np.linalg.norm(n, axis=-1, keepdims=True)
    n = _unit(n)
    # A clear bend gives the true hinge (knees and elbows bend one way only), whatever the rest
    # reference says: the upper limb may be twisted far from it (arms held up like goalposts).
    # Only a nearly straight limb, whose bending plane is noise, is put on the reference's side.
    near_straight = sine < _FULL_HINGE_SINE
    n = np.where(near_straight & ((n * fallback).sum(-1, keepdims=True) < 0), -n, n)
    w = np.clip(sine / _FULL_HINGE_SINE, 0.0, 1.0)
    return _unit(w * n + (1 - w) * fallback)


def solve_h36m(joints: np.ndarray, fps: float, rig: Rig | None = None) -> Motion:
    """Rotations on the ``h36m`` rig reproducing ``joints (T,17,3)`` (world, Y up, metres)."""
    j = {n: joints[:, i] for n, i in _I.items()}
    rig = rig or h36m_rig(joints)
    t = joints.shape[0]
    world = np.tile(np.eye(3), (t, 17, 1, 1))

    def set_world(name: str, primary: np.ndarray, secondary: np.ndarray, rest_a: np.ndarray,
                  rest_b: np.ndarray) -> None:
        world[:, _I[name]] = _frames(primary, secondary) @ _frames(rest_a, rest_b).T

    world[:, _I["pelvis"]], world[:, _I["thorax"]] = _torso_frames(joints)
    set_world("spine", j["thorax"] - j["spine"], j["left_shoulder"] - j["right_shoulder"], _Y, _X)
    set_world("neck_nose", j["head_top"] - j["neck_nose"], world[:, _I["thorax"]] @ _X, _Y, _X)
    for side in ("left", "right"):
        thigh = j[f"{side}_knee"] - j[f"{side}_hip"]
        shin = j[f"{side}_ankle"] - j[f"{side}_knee"]
        # Knees bend about the leg's left axis.
        hinge = _hinge(thigh, shin, _carried_hinge(world[:, _I["pelvis"]], -_Y, _X, thigh))
        set_world(f"{side}_hip", thigh, hinge, -_Y, _X)
        set_world(f"{side}_knee", shin, hinge, -_Y, _X)
        arm_axis = _X if side == "left" else -_X
        elbow_rest = -_Y if side == "left" else _Y  # forearm bending forward from a T-pose
        upper = j[f"{side}_elbow"] - j[f"{side}_shoulder"]
        fore = j[f"{side}_wrist"] - j[f"{side}_elbow"]
        hinge = _hinge(upper, fore, _carried_hinge(world[:, _I["thorax"]], arm_axis, elbow_rest, upper))
        set_world(f"{side}_shoulder", upper, hinge, arm_axis, elbow_rest)
        set_world(f"{side}_elbow", fore, hinge, arm_axis, elbow_rest)
    for leaf, parent in (("left_ankle", "left_knee"), ("right_ankle", "right_knee"), ("left_wrist", "left_elbow"),
                         ("right_wrist", "right_elbow"), ("head_top", "neck_nose")):
        world[:, _I[leaf]] = world[:, _I[parent]]
    local = world.copy()
    for k in range(1, 17):
        local[:, k] = np.swapaxes(world[:, rig.parents[k]], -1, -2) @ world[:, k]
    rotations = continuous_quaternions(matrices_to_quaternions(local))
    return Motion(rig=rig, rotations=rotations, root_translation=j["pelvis"].copy(), fps=fps,
                  meta={"solver": "h36m-hinge", "source_joints": "h36m17"})
