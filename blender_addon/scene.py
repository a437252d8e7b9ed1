"""Motion into the scene (bpy): a new armature with its action, or keys on the user's armature.

Works with Blender 4.2 to 5.0: 5.0 keeps F-curves in layered actions (``action.layers[].strips[]
.channelbags[]``, assigned through an action slot); older versions in ``action.fcurves``.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from .animation import (
    MIN_MAPPED,
    ROLES,
    bone_layout,
    detect_bone_map,
    motion_keys,
    retarget_keys,
    source_roles,
    unmapped_message,
)
from .vendor.motion import Motion

__all__ = ["apply_fps", "build_armature", "retarget_onto"]


def apply_fps(scene: Any, fps: float, mode: str) -> float:
    """``mode`` ``SET_SCENE``: the scene takes the clip's frame rate (one key per scene frame);
    ``RETIME``: the scene keeps its rate and keys are spaced to it. Scene frames per clip frame."""
    if mode == "SET_SCENE":
        rounded = max(1, round(fps))
        scene.render.fps = rounded
        scene.render.fps_base = rounded / fps
        return 1.0
    return float(scene.render.fps / scene.render.fps_base) / fps


def _channels(action: Any, obj: Any) -> Any:
    """Where F-curves go: a channel bag for ``obj``'s slot (Blender 4.4+ layered actions) or the
    action itself (older)."""
    if not hasattr(action, "layers"):
        return action
    slot = action.slots.new(id_type="OBJECT", name=obj.name)
    layer = action.layers.new("vp3d")
    strip = layer.strips.new(type="KEYFRAME")
    obj.animation_data.action = action
    obj.animation_data.action_slot = slot
    return strip.channelbag(slot, ensure=True)


def _write_curves(action: Any, obj: Any, frames: np.ndarray, rotations: dict[str, np.ndarray],
                  location: tuple[str, np.ndarray] | None) -> None:
    obj.animation_data_create()
    bag = _channels(action, obj)
    if not hasattr(action, "layers"):
        obj.animation_data.action = action

    def curve(path: str, index: int, group: str, values: np.ndarray) -> None:
        fc = bag.fcurves.new(path, index=index, group_name=group) if hasattr(action, "layers") else \
            bag.fcurves.new(path, index=index, action_group=group)
        fc.keyframe_points.add(len(frames))
        co = np.empty(2 * len(frames), dtype=np.float32)
        co[0::2], co[1::2] = frames, values
        fc.keyframe_points.foreach_set("co", co)
        fc.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, dtype=np.int32))  # LINEAR
        fc.update()

    for bone, quats in rotations.items():
        path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].rotation_quaternion'
        for i in range(4):
            curve(path, i, bone, quats[:, i])
    if location is not None:
        bone, values = location
        path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].location'
        for i in range(3):
            curve(path, i, bone, values[:, i])


def _contacts_property(action: Any, contacts: np.ndarray | None, motion: Motion) -> None:
    if contacts is not None:
        action["vp3d_left_foot_contact"] = [int(v) for v in contacts[:, 0]]
        action["vp3d_right_foot_contact"] = [int(v) for v in contacts[:, 1]]
    action["vp3d_fps"] = float(motion.fps)
    action["vp3d_rig"] = motion.rig.preset


def build_armature(context: Any, motion: Motion, name: str, contacts: np.ndarray | None, frame_start: int,
                   fps_mode: str) -> Any:
    """A new armature object ``name`` in the rig's rest pose, animated by ``motion``."""
    scene = context.scene
    layout = bone_layout(motion)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    context.collection.objects.link(obj)
    context.view_layer.objects.active = obj
    mode = obj.mode
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = []
        for k, bone_name in enumerate(motion.rig.names):
            bone = data.edit_bones.new(bone_name)
            bone.head, bone.tail = layout.heads[k].tolist(), layout.tails[k].tolist()
            bones.append(bone)
        for k, parent in enumerate(motion.rig.parents):
            if parent >= 0:
                bones[k].parent = bones[parent]
    finally:
        bpy.ops.object.mode_set(mode=mode)
    rest = np.array([np.array(data.bones[n].matrix_local)[:3, :3] for n in motion.rig.names])
    quats, location = motion_keys(motion, rest, np.array(data.bones[motion.rig.names[0]].head_local))
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    step = apply_fps(scene, motion.fps, fps_mode)
    frames = frame_start + np.arange(motion.num_frames) * step
    action = bpy.data.actions.new(f"{name} motion")
    _write_curves(action, obj, frames, {n: quats[:, k] for k, n in enumerate(motion.rig.names)},
                  (motion.rig.names[0], location))
    _contacts_property(action, contacts, motion)
    scene.frame_start, scene.frame_end = int(frames[0]), int(np.ceil(frames[-1]))
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj


def stored_map(obj: Any) -> dict[str, str]:
    """The armature's bone map, role -> bone, the bones it still has only."""
    return {item.role: item.target for item in obj.vp3d_bone_map if item.target and item.target in obj.data.bones}


def ensure_bone_map(obj: Any) -> tuple[str, int]:
    """Fill the armature's editable bone map (role -> bone) when it is empty, and remember the naming
    it was detected from; that naming (``""`` for a map of unknown origin) and how many roles are mapped."""
    if len(obj.vp3d_bone_map):
        return obj.vp3d_bone_map_naming, len(stored_map(obj))
    convention, found = detect_bone_map([b.name for b in obj.data.bones])
    for role in ROLES:
        item = obj.vp3d_bone_map.add()
        item.role, item.target = role, found.get(role, "")
    obj.vp3d_bone_map_naming = convention
    return convention, len(found)


def retarget_onto(context: Any, obj: Any, motion: Motion, contacts: np.ndarray | None, frame_start: int,
                  fps_mode: str, name: str) -> Any:
    """Bake ``motion`` into a new action on the user's armature ``obj`` through its bone map."""
    convention, _ = ensure_bone_map(obj)
    by_role = stored_map(obj)
    roles = source_roles(motion.rig.names)
    bone_map = {motion.rig.names[roles[r]]: by_role[r] for r in ROLES if r in roles and r in by_role}
    if len(bone_map) < MIN_MAPPED:
        needed = [r for r in ROLES if r in roles]
        raise ValueError(unmapped_message(obj.name, convention, needed, {r for r in needed if r in by_role}))
    bones = list(obj.data.bones)
    names = [b.name for b in bones]
    parents = [names.index(b.parent.name) if b.parent else -1 for b in bones]
    rest = np.array([np.array(b.matrix_local)[:3, :3] for b in bones])
    heads = np.array([np.array(b.head_local) for b in bones])
    tails = np.array([np.array(b.tail_local) for b in bones])
    quats, root_bone, location = retarget_keys(motion, bone_map, names, parents, rest, heads, tails,
                                               np.array(obj.matrix_world))
    keyed = set(bone_map.values())
    for pose_bone in obj.pose.bones:
        if pose_bone.name in keyed:
            pose_bone.rotation_mode = "QUATERNION"
    step = apply_fps(context.scene, motion.fps, fps_mode)
    frames = frame_start + np.arange(motion.num_frames) * step
    action = bpy.data.actions.new(f"{name} on {obj.name}")
    _write_curves(action, obj, frames, {n: quats[:, j] for j, n in enumerate(names) if n in keyed},
                  (root_bone, location) if root_bone else None)
    _contacts_property(action, contacts, motion)
    context.scene.frame_start, context.scene.frame_end = int(frames[0]), int(np.ceil(frames[-1]))
    return obj
