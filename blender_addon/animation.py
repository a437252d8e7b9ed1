"""A Motion as Blender keys, and retargeting, in numpy (no bpy: testable outside Blender).

vp3d's world is Y up, the subject facing +Z; Blender's is Z up, facing -Y. The one conversion,
``(x, y, z) -> (x, -z, y)`` (:data:`TO_BLENDER`), is applied here and nowhere else.

Blender keys a pose bone's ``matrix_basis``: with ``B`` a bone's rest rotation in armature space
(``bone.matrix_local``) and ``R`` its posed rotation, ``R_k = R_parent @ (B_parent^T @ B_k) @
basis_k``. A Motion's local rotation ``L_k`` is relative to a rest frame aligned with the world, so
``basis_k = B_k^T @ (C L_k C^T) @ B_k``: the same turn seen in the bone's own axes.

The video's camera (a Motion file's ``camera``): its rotations turn the picture's axes (x right, y
down, z forward) into vp3d's world; a Blender camera looks down its local -Z with +Y up, so its
object rotation is ``C @ R @ diag(1, -1, -1)`` (:func:`camera_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vendor.motion import (
    Motion,
    continuous_quaternions,
    forward_kinematics,
    matrices_to_quaternions,
    quaternions_to_matrices,
)

__all__ = ["MIN_MAPPED", "ROLES", "SENSOR_WIDTH_MM", "TO_BLENDER", "BoneLayout", "RetargetPlacement", "bone_layout",
           "camera_keys", "camera_lens", "motion_keys", "retarget_keys", "retarget_placement", "source_roles",
           "unmapped_message"]

TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
PICTURE_TO_VIEW = np.diag([1.0, -1.0, -1.0])  # picture camera axes (y down, z forward) to a Blender camera's
SENSOR_WIDTH_MM = 36.0  # the camera's sensor width; its lens follows from the focal length in pixels
MIN_BONE = 0.02  # metres: Blender drops zero-length bones

#: Body parts by their Mixamo names (the richest preset): every naming maps to these.
ROLES = ("Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
         "RightShoulder", "RightArm", "RightForeArm", "RightHand", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase",
         "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase")
_UE = dict(zip(ROLES, ("pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head", "clavicle_l", "upperarm_l",
                       "lowerarm_l", "hand_l", "clavicle_r", "upperarm_r", "lowerarm_r", "hand_r", "thigh_l", "calf_l",
                       "foot_l", "ball_l", "thigh_r", "calf_r", "foot_r", "ball_r"), strict=True))
_RIGIFY = dict(zip(ROLES, ("DEF-spine", "DEF-spine.001", "DEF-spine.002", "DEF-spine.003", "DEF-spine.004",
                           "DEF-spine.006", "DEF-shoulder.L", "DEF-upper_arm.L", "DEF-forearm.L", "DEF-hand.L",
                           "DEF-shoulder.R", "DEF-upper_arm.R", "DEF-forearm.R", "DEF-hand.R", "DEF-thigh.L",
                           "DEF-shin.L", "DEF-foot.L", "DEF-toe.L", "DEF-thigh.R", "DEF-shin.R", "DEF-foot.R",
                           "DEF-toe.R"), strict=True))
_H36M = {"pelvis": "Hips", "spine": "Spine1", "thorax": "Neck", "neck_nose": "Head", "left_shoulder": "LeftArm",
         "left_elbow": "LeftForeArm", "left_wrist": "LeftHand", "right_shoulder": "RightArm",
         "right_elbow": "RightForeArm", "right_wrist": "RightHand", "left_hip": "LeftUpLeg", "left_knee": "LeftLeg",
         "left_ankle": "LeftFoot", "right_hip": "RightUpLeg", "right_knee": "RightLeg", "right_ankle": "RightFoot"}
CONVENTIONS = {"mixamo": {r: "mixamorig:" + r for r in ROLES}, "ue": _UE, "rigify": _RIGIFY}
MIN_MAPPED = 6  # body parts with a bone, at the least, for a retarget to mean anything


def source_roles(names: tuple[str, ...]) -> dict[str, int]:
    """Role -> joint index for a Motion rig's joint names (mixamo, ue or h36m preset)."""
    out: dict[str, int] = {}
    inverse_ue = {v: k for k, v in _UE.items()}
    for k, name in enumerate(names):
        bare = name.split(":")[-1]
        role = bare if bare in ROLES else inverse_ue.get(name) or _H36M.get(name)
        if role and role not in out:
            out[role] = k
    return out


def _normal(name: str) -> str:
    return "".join(c for c in name.split(":")[-1].lower() if c.isalnum())


def detect_bone_map(target_bones: list[str]) -> tuple[str, dict[str, str]]:
    """The naming the target uses and role -> target bone: by preset (Mixamo with any ``prefix:``,
    Rigify ``DEF-`` bones, the Unreal mannequin), else by names matching once case, prefixes and
    punctuation are set aside."""
    present = set(target_bones)
    by_normal = {_normal(b): b for b in target_bones}
    best: tuple[str, dict[str, str]] = ("none", {})
    for convention, table in CONVENTIONS.items():
        found = {}
        for role, name in table.items():
            if name in present:
                found[role] = name
            elif convention == "mixamo" and _normal(name) in by_normal:  # mixamorig1:, no prefix, ...
                found[role] = by_normal[_normal(name)]
        if len(found) > len(best[1]):
            best = (convention, found)
    if len(best[1]) < 6:  # names as the roles are, in any case ("hips", "LeftArm")
        found = {role: by_normal[_normal(role)] for role in ROLES if _normal(role) in by_normal}
        if len(found) > len(best[1]):
            best = ("names", found)
    return best


def unmapped_message(armature: str, naming: str, needed: list[str], mapped: set[str]) -> str:
    """Why a motion cannot drive ``armature``: of the body parts it drives (``needed``, roles) only
    ``mapped`` have a bone. Names the bones it looked for under ``naming`` (the preset the map was
    detected with: a key of :data:`CONVENTIONS`, ``names``, ``none`` or ``""`` for a map of unknown
    origin) and says where to fix the map."""
    missing = [r for r in needed if r not in mapped]
    table = CONVENTIONS.get(naming, {})
    parts = ", ".join(table.get(r, r) if table.get(r, r).endswith(r) else f"{r} ({table[r]})" for r in missing)
    head = (f"{armature}: only {len(mapped)} of the {len(needed)} body parts the motion drives are mapped to its bones "
            f"(at least {MIN_MAPPED} are needed)")
    fix = "give its bones those names, or pick the bones in the vp3d panel's Bone map (select the armature)"
    if naming == "none":
        tried = "; ".join(f"{name} ({', '.join(list(t.values())[:3])}, ...)" for name, t in CONVENTIONS.items())
        how = f"no naming matched its bones (tried {tried}; and the parts' own names: Hips, LeftArm, ...)"
        fix = "name its bones as one of those, or pick them in the vp3d panel's Bone map (select the armature)"
    elif naming in CONVENTIONS:
        how = f"the map was detected from {naming} names and found no bone for {parts}"
    elif naming == "names":
        how = f"the map was detected from the parts' own names and found no bone for {parts}"
    else:
        how = f"the bone map stored on it has no bone for {parts}"
    return f"{head}; {how}: {fix}"


@dataclass
class BoneLayout:
    """Rest pose of the armature made for a Motion, in Blender's space (armature = world)."""

    heads: np.ndarray  # (J,3)
    tails: np.ndarray  # (J,3)


def _aim_child(rig_parents: np.ndarray, offsets: np.ndarray, k: int) -> int | None:
    children = [c for c in range(len(rig_parents)) if rig_parents[c] == k and np.linalg.norm(offsets[c]) > 1e-6]
    if not children:
        return None
    own = offsets[k] if rig_parents[k] >= 0 else np.array([0.0, 1.0, 0.0])  # the root aims up (the spine)
    own = own / max(float(np.linalg.norm(own)), 1e-9)
    return max(children, key=lambda c: float(offsets[c] @ own / np.linalg.norm(offsets[c])))


def bone_layout(motion: Motion) -> BoneLayout:
    """Heads at the rest joints (the root at its first-frame height), tails towards the child that
    continues the chain, or along the end site, or the parent's direction."""
    rig = motion.rig
    parents, offsets = np.asarray(rig.parents), np.asarray(rig.rest_offsets, dtype=np.float64)
    rest = np.zeros_like(offsets)
    rest[0] = [0.0, float(motion.root_translation[0, 1]), 0.0]
    for k in range(1, len(parents)):
        rest[k] = rest[parents[k]] + offsets[k]
    tails = np.zeros_like(rest)
    for k in range(len(parents)):
        child = _aim_child(parents, offsets, k)
        if child is not None:
            direction = offsets[child]
        elif rig.end_sites and rig.names[k] in rig.end_sites:
            direction = np.asarray(rig.end_sites[rig.names[k]], dtype=np.float64)
        else:
            direction = offsets[k] * 0.5 if np.linalg.norm(offsets[k]) > 1e-6 else np.array([0.0, 0.1, 0.0])
        length = max(float(np.linalg.norm(direction)), MIN_BONE)
        tails[k] = rest[k] + direction / max(float(np.linalg.norm(direction)), 1e-9) * length
    return BoneLayout(heads=rest @ TO_BLENDER.T, tails=tails @ TO_BLENDER.T)


def motion_keys(motion: Motion, rest: np.ndarray, root_head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the ``matrix_basis`` quaternions ``(T,J,4)`` (w, x, y, z) of every bone of an
    armature whose bones' rest rotations are ``rest (J,3,3)``, and the root bone's location
    ``(T,3)`` (in its rest frame, from its rest head ``root_head``)."""
    local = quaternions_to_matrices(motion.rotations)  # (T,J,3,3)
    c = TO_BLENDER
    blender = c @ local @ c.T
    basis = np.swapaxes(rest, -1, -2)[None] @ blender @ rest[None]
    quats = continuous_quaternions(matrices_to_quaternions(basis))
    root = motion.root_translation @ c.T
    location = (root - root_head) @ rest[0]  # rest[0].T applied to each row
    return quats, location


def world_pose(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions ``(T,J,3)`` and world rotations ``(T,J,3,3)`` in Blender's space."""
    positions, rotations = forward_kinematics(motion)
    c = TO_BLENDER
    return positions @ c.T, c @ rotations @ c.T


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` to ``b`` (3x3)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, cos = np.cross(a, b), float(a @ b)
    if cos < -1 + 1e-9:
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + cos)


def retarget_keys(motion: Motion, bone_map: dict[str, str], target_names: list[str], target_parents: list[int],
                  target_rest: np.ndarray, target_heads: np.ndarray, target_tails: np.ndarray,
                  object_matrix: np.ndarray) -> tuple[np.ndarray, str, np.ndarray]:
    """Keys for the user's armature following ``motion``: ``matrix_basis`` quaternions ``(T,N,4)``
    for the ``N`` target bones, the bone that carries the root motion, and its location ``(T,3)``.

    ``bone_map``: source joint name -> target bone name. ``target_rest (N,3,3)`` and
    ``target_heads``, ``target_tails (N,3)``: ``bone.matrix_local`` rotations, heads and tails in
    armature space;
    ``object_matrix (4,4)``: the armature object's world matrix (a Mixamo FBX often comes turned and
    scaled). Each mapped bone points where its source bone points (its rest pose made to match the
    source's T-pose first, so an A-pose character follows a T-pose motion); bones not mapped keep
    their rest pose relative to their parent; the root travels scaled by the ratio of hip heights.
    Bone lengths are never changed (only rotations are keyed, and one location).
    """
    source_pos, source_rot = world_pose(motion)
    layout = bone_layout(motion)
    src_index = {n: k for k, n in enumerate(motion.rig.names)}
    q = object_matrix[:3, :3]
    scale = float(np.cbrt(abs(np.linalg.det(q))))
    q = q / scale  # the object's rotation
    frames, n = motion.num_frames, len(target_names)
    target_index = {name: j for j, name in enumerate(target_names)}
    offsets: dict[int, np.ndarray] = {}
    source_of: dict[int, int] = {}
    for source_name, target_name in bone_map.items():
        if source_name in src_index and target_name in target_index:
            source_of[target_index[target_name]] = src_index[source_name]
    target_of = {k: j for j, k in source_of.items()}
    parents, rest_offsets = np.asarray(motion.rig.parents), np.asarray(motion.rig.rest_offsets, dtype=np.float64)
    tails = np.asarray(target_tails, dtype=np.float64)
    for j, k in source_of.items():
        # The bone's direction towards the joint its chain continues to (the spine from the hips, the
        # elbow from the shoulder): head to that child's head on both rigs, else the bone itself.
        child = _aim_child(parents, rest_offsets, k)
        if child is not None and child in target_of:
            source_dir = layout.heads[child] - layout.heads[k]
            target_dir = target_heads[target_of[child]] - target_heads[j]
        else:
            source_dir = layout.tails[k] - layout.heads[k]
            target_dir = tails[j] - target_heads[j]
        # at the source's rest its world rotation is the identity: the target's rest turned onto it
        offsets[j] = _swing(target_dir, q.T @ source_dir) @ target_rest[j]
    posed = np.zeros((frames, n, 3, 3))
    for j in range(n):  # parents come before children in Blender's bone order
        p = target_parents[j]
        if j in source_of:
            posed[:, j] = q.T @ source_rot[:, source_of[j]] @ q @ offsets[j]
        elif p >= 0:
            posed[:, j] = posed[:, p] @ (target_rest[p].T @ target_rest[j])
        else:
            posed[:, j] = target_rest[j]
    basis = np.empty_like(posed)
    for j in range(n):
        p = target_parents[j]
        relative = target_rest[j] if p < 0 else target_rest[p].T @ target_rest[j]
        parent = np.eye(3)[None] if p < 0 else posed[:, p]
        basis[:, j] = relative.T[None] @ np.swapaxes(parent, -1, -2) @ posed[:, j]
    quats = continuous_quaternions(matrices_to_quaternions(basis))
    # Root motion on the hips bone: the source root's travel, in the target's armature space, scaled.
    hips_k = source_roles(motion.rig.names).get("Hips", 0)
    hips_j = next((j for j, k in source_of.items() if k == hips_k), None)
    if hips_j is None:
        return quats, "", np.zeros((frames, 3))
    placed = _placement(layout, hips_k, target_heads, hips_j, object_matrix)
    travel = (source_pos[:, hips_k] - placed.source) * placed.scale  # world, metres of the target
    location = (travel @ q / scale) @ target_rest[hips_j]  # into armature space, then the bone's rest frame
    return quats, target_names[hips_j], location


def camera_keys(rotations: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Blender camera object following the video's camera: its locations ``(T,3)`` and rotation
    quaternions ``(T,4)`` (w, x, y, z, sign-continuous) in Blender's world, from the camera's
    ``rotations (T,3,3)`` (picture axes to vp3d's world) and ``positions (T,3)`` (vp3d's world)."""
    c = TO_BLENDER
    turned = c @ np.asarray(rotations, dtype=np.float64) @ PICTURE_TO_VIEW
    return np.asarray(positions, dtype=np.float64) @ c.T, continuous_quaternions(matrices_to_quaternions(turned))


def camera_lens(focal_px: float, image_width: int) -> float:
    """The lens (mm) on a :data:`SENSOR_WIDTH_MM` sensor fitted to the picture's width that sees as a
    camera of ``focal_px`` pixels does."""
    return float(focal_px) * SENSOR_WIDTH_MM / float(image_width)


@dataclass
class RetargetPlacement:
    """Where :func:`retarget_keys` puts the Motion's world on the user's armature: a point ``p`` of
    it (Blender's axes) is seen at ``target + (p - source) * scale`` (directions unchanged).
    ``source``: the Motion's rest hips; ``target``: the armature's rest hips in the world; ``scale``:
    the ratio of their heights over the lowest joint."""

    source: np.ndarray
    target: np.ndarray
    scale: float

    def place(self, points: np.ndarray) -> np.ndarray:
        return self.target + (np.asarray(points, dtype=np.float64) - self.source) * self.scale


def _placement(layout: BoneLayout, hips_k: int, target_heads: np.ndarray, hips_j: int,
               object_matrix: np.ndarray) -> RetargetPlacement:
    source_height = max(float(layout.heads[hips_k][2] - layout.heads[:, 2].min()), 1e-6)
    target_world_heads = np.asarray(target_heads, dtype=np.float64) @ object_matrix[:3, :3].T + object_matrix[:3, 3]
    target_height = float(target_world_heads[hips_j][2] - target_world_heads[:, 2].min())
    return RetargetPlacement(layout.heads[hips_k].copy(), target_world_heads[hips_j].copy(),
                             target_height / source_height)


def retarget_placement(motion: Motion, bone_map: dict[str, str], target_names: list[str], target_heads: np.ndarray,
                       object_matrix: np.ndarray) -> RetargetPlacement | None:
    """:class:`RetargetPlacement` of ``motion`` retargeted onto an armature (arguments as
    :func:`retarget_keys` takes them); None when its hips are not mapped (no root motion)."""
    hips_k = source_roles(motion.rig.names).get("Hips", 0)
    bone = bone_map.get(motion.rig.names[hips_k])
    if bone is None or bone not in target_names:
        return None
    return _placement(bone_layout(motion), hips_k, target_heads, target_names.index(bone), np.asarray(object_matrix))
