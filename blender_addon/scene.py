"""Motion into the scene (bpy): a new armature with its action, or keys on the user's armature;
for everyone in a clip, an armature each or the selected armatures in order (:func:`place_people`);
the video's camera, when the Motion file holds it, as a camera object with the video behind it.

Works with Blender 4.2 to 5.0: 5.0 keeps F-curves in layered actions (``action.layers[].strips[]
.channelbags[]``, assigned through an action slot); older versions in ``action.fcurves``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from .animation import (
    MIN_MAPPED,
    ROLES,
    SENSOR_WIDTH_MM,
    RetargetPlacement,
    bone_layout,
    camera_keys,
    camera_lens,
    detect_bone_map,
    motion_keys,
    retarget_keys,
    retarget_placement,
    source_roles,
    unmapped_message,
)
from .vendor.motion import Motion
from .vendor.motion_file import MotionCamera, MotionFile

__all__ = ["Footage", "apply_fps", "bone_map_for", "build_armature", "build_camera", "place_people", "retarget_onto",
           "selected_armatures"]

#: Blender's operator report: ``report({"INFO"}, "what was made")``.
Report = Callable[[set[str], str], object]
CLIP_START_M, CLIP_END_M = 0.05, 1000.0  # the camera's clipping distances


@dataclass(frozen=True)
class Footage:
    """The video a Motion was converted from: its ``path``, and ``start_s``, the time (s) in it of
    the Motion's first frame (the conversion's start)."""

    path: Path
    start_s: float = 0.0


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


def _key(action: Any, obj: Any, frames: np.ndarray, channels: list[tuple[str, str, np.ndarray]]) -> None:
    """Linear keys on ``frames`` for each ``(data path, group, values (T,n))`` of ``channels``."""
    obj.animation_data_create()
    bag = _channels(action, obj)
    if not hasattr(action, "layers"):
        obj.animation_data.action = action
    for path, group, values in channels:
        for index in range(values.shape[1]):
            fc = bag.fcurves.new(path, index=index, group_name=group) if hasattr(action, "layers") else \
                bag.fcurves.new(path, index=index, action_group=group)
            fc.keyframe_points.add(len(frames))
            co = np.empty(2 * len(frames), dtype=np.float32)
            co[0::2], co[1::2] = frames, values[:, index]
            fc.keyframe_points.foreach_set("co", co)
            fc.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, dtype=np.int32))  # LINEAR
            fc.update()


def _write_curves(action: Any, obj: Any, frames: np.ndarray, rotations: dict[str, np.ndarray],
                  location: tuple[str, np.ndarray] | None) -> None:
    def bone_path(bone: str) -> str:
        return f'pose.bones["{bpy.utils.escape_identifier(bone)}"]'

    channels = [(f"{bone_path(bone)}.rotation_quaternion", bone, quats) for bone, quats in rotations.items()]
    if location is not None:
        channels.append((f"{bone_path(location[0])}.location", location[0], location[1]))
    _key(action, obj, frames, channels)


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


def bone_map_for(obj: Any, motion: Motion) -> dict[str, str]:
    """The armature's bones for ``motion``'s joints (joint -> bone), through its bone map (detected
    when empty); a ValueError that names what is missing when too few body parts are mapped."""
    convention, _ = ensure_bone_map(obj)
    by_role = stored_map(obj)
    roles = source_roles(motion.rig.names)
    bone_map = {motion.rig.names[roles[r]]: by_role[r] for r in ROLES if r in roles and r in by_role}
    if len(bone_map) < MIN_MAPPED:
        needed = [r for r in ROLES if r in roles]
        raise ValueError(unmapped_message(obj.name, convention, needed, {r for r in needed if r in by_role}))
    return bone_map


def selected_armatures(context: Any) -> list[Any]:
    """The armatures to drive, in order: the active object (an armature), then the other selected
    armatures by name."""
    active = context.active_object
    first = [active] if active is not None and active.type == "ARMATURE" else []
    others = [o for o in context.view_layer.objects if o.type == "ARMATURE" and o.select_get() and o not in first]
    return first + sorted(others, key=lambda o: o.name)


def retarget_onto(context: Any, obj: Any, motion: Motion, contacts: np.ndarray | None, frame_start: int,
                  fps_mode: str, name: str) -> Any:
    """Bake ``motion`` into a new action on the user's armature ``obj`` through its bone map."""
    bone_map = bone_map_for(obj, motion)
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


def build_camera(context: Any, camera: MotionCamera, name: str, fps: float, frame_start: int, fps_mode: str,
                 placement: RetargetPlacement | None = None, footage: Footage | None = None,
                 report: Report | None = None) -> Any:
    """A camera object ``name`` following the video's camera on the Motion's frames (``fps``, keyed
    as :func:`build_armature` keys), its lens from the focal length on a 36 mm sensor fitted to the
    picture's width; ``placement``: moved onto a retargeted armature as its root is. ``footage``: the
    video behind it (a movie clip background, its first frame where the Motion's is); a video Blender
    cannot open leaves the camera without one and a warning in ``report``."""
    w, h = camera.image_size
    data = bpy.data.cameras.new(name)
    data.sensor_fit, data.sensor_width, data.sensor_height = "HORIZONTAL", SENSOR_WIDTH_MM, SENSOR_WIDTH_MM * h / w
    data.lens = camera_lens(camera.focal_px, w)
    data.clip_start, data.clip_end = CLIP_START_M, CLIP_END_M
    obj = bpy.data.objects.new(name, data)
    context.collection.objects.link(obj)
    locations, quats = camera_keys(camera.rotations, camera.positions)
    if placement is not None:
        locations = placement.place(locations)
    obj.rotation_mode = "QUATERNION"
    frames = frame_start + np.arange(len(quats)) * apply_fps(context.scene, fps, fps_mode)
    _key(bpy.data.actions.new(f"{name} motion"), obj, frames,
         [("location", "Object Transforms", locations), ("rotation_quaternion", "Object Transforms", quats)])
    if footage is not None:
        try:
            clip = bpy.data.movieclips.load(str(footage.path), check_existing=True)
        except RuntimeError as exc:
            why = str(exc).strip()
        else:
            why = "" if clip.frame_duration > 0 else "no frames"  # Blender "loads" any file
            if why:
                bpy.data.movieclips.remove(clip)
        if why:
            if report is not None:
                report({"WARNING"}, f"vp3d: the camera {name} has no video behind it: Blender cannot play "
                                    f"{footage.path} ({why})")
            return obj
        clip.frame_start = frame_start - round(footage.start_s * float(clip.fps or fps))
        background = data.background_images.new()
        background.source, background.clip = "MOVIE_CLIP", clip
        data.show_background_images = True
    return obj


def _place_camera(context: Any, people: list[tuple[str, MotionFile]], target: str, frame_start: int, fps_mode: str,
                  driven: Any, footage: Footage | None, name: str | None, report: Report) -> None:
    """The first person's camera (everyone shares their world), if their file has one. ``NEW``: the
    scene's camera, its render size the picture's. ``SELECTED``: moved onto the first driven
    armature as its root motion is (the scene's camera only when it has none; its render size kept)."""
    label, first = people[0]
    if first.camera is None:
        return
    placement = None
    if target == "SELECTED" and driven is not None:
        bones = list(driven.data.bones)
        placement = retarget_placement(first.motion, bone_map_for(driven, first.motion), [b.name for b in bones],
                                       np.array([np.array(b.head_local) for b in bones]),
                                       np.array(driven.matrix_world))
    obj = build_camera(context, first.camera, name or f"{label} camera", first.motion.fps, frame_start, fps_mode,
                       placement, footage, report)
    scene = context.scene
    if target != "SELECTED":
        scene.render.resolution_x, scene.render.resolution_y = (int(v) for v in first.camera.image_size)
        scene.camera = obj
    elif scene.camera is None:
        scene.camera = obj


def place_people(context: Any, people: list[tuple[str, MotionFile]], target: str, frame_start: int, fps_mode: str,
                 report: Report, footage: Footage | None = None, camera_name: str | None = None) -> bool:
    """Each person's Motion (named) into the scene, all in the one world the engine solved them in:
    ``target`` ``NEW`` makes an armature each, ``SELECTED`` drives the :func:`selected_armatures`
    in order, every one checked before any is keyed. The first person's camera, when their file
    holds one, becomes a camera object ``camera_name`` (default ``"{their name} camera"``) with
    ``footage`` behind it (:func:`build_camera`). ``report`` says what was made, and who was left
    out for want of armatures; False (and an error reported) when nothing could be."""
    motion = people[0][1].motion
    if target != "SELECTED":
        made = [build_armature(context, f.motion, name, f.foot_contacts, frame_start, fps_mode) for name, f in people]
        _place_camera(context, people, target, frame_start, fps_mode, None, footage, camera_name, report)
        if len(made) == 1:
            report({"INFO"}, f"vp3d: {made[0].name}, {motion.num_frames} frames at {motion.fps:g} fps")
            return True
        _cover(context.scene, made)
        for obj in made:
            obj.select_set(True)
        context.view_layer.objects.active = made[0]
        report({"INFO"}, f"vp3d: {len(made)} people: {', '.join(o.name for o in made)}, {motion.num_frames} frames "
                         f"at {motion.fps:g} fps")
        return True
    driven = list(zip(people, selected_armatures(context), strict=False))  # fewer armatures: the first
    try:
        for (_, f), obj in driven:  # every armature fits before any is keyed
            bone_map_for(obj, f.motion)
        for (name, f), obj in driven:
            retarget_onto(context, obj, f.motion, f.foot_contacts, frame_start, fps_mode, name)
    except ValueError as exc:
        report({"ERROR"}, str(exc))
        return False
    _place_camera(context, people, target, frame_start, fps_mode, driven[0][1] if driven else None, footage,
                  camera_name, report)
    if len(people) == 1:
        report({"INFO"}, f"vp3d: {motion.num_frames} frames baked onto {driven[0][1].name}")
        return True
    _cover(context.scene, [obj for _, obj in driven])
    onto = ", ".join(f"{name} onto {obj.name}" for (name, _), obj in driven)
    some = f"{len(driven)} of {len(people)}" if len(driven) < len(people) else f"{len(people)}"
    report({"INFO"}, f"vp3d: {some} people: {onto}, {motion.num_frames} frames at {motion.fps:g} fps")
    left = [name for name, _ in people[len(driven):]]
    if left:
        report({"WARNING"}, f"vp3d: {len(left)} {'person was' if len(left) == 1 else 'people were'} left out "
                            f"({', '.join(left)}): select an armature for each of the {len(people)} people (the "
                            "active one drives the first, the others in order of their names the rest)")
    return True


def _cover(scene: Any, objs: list[Any]) -> None:
    """The scene's frame range over every armature's new action (the people of a clip share its frames)."""
    ranges = [obj.animation_data.action.frame_range for obj in objs]
    scene.frame_start = int(min(r[0] for r in ranges))
    scene.frame_end = int(max(np.ceil(r[1]) for r in ranges))
