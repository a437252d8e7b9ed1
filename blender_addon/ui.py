"""The operators of the "Import pose from video" add-on, and its registration (settings in
``settings.py``, panels and menus in ``panels.py``).

(No ``from __future__ import annotations`` here: Blender reads the property annotations of these
classes as objects.)"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .engine import (
    VIDEO_SUFFIXES,
    EngineError,
    Job,
    LocalJob,
    RemoteJob,
    convert_not_found,
    engine_options,
    list_backends_local,
    list_backends_remote,
    person_of,
)
from .panels import (
    VP3D_PT_bone_map,
    VP3D_PT_import,
    VP3D_UL_bone_map,
    draw_convert_notice,
    draw_options,
    menu_motion,
    menu_video,
)
from .settings import (
    _BACKENDS,
    ENGINE_OPTIONS,
    FPS_MODES,
    TARGETS,
    VP3D_AddonPreferences,
    VP3D_BoneMapItem,
    VP3D_Settings,
    _options_props,
    local_convert,
    preferences,
)

_JOBS: dict[int, Job] = {}  # the running job, by operator instance (one at a time)
#: Bone keys (frames x bones) the add-on bakes at once: an hour at 60 fps of a 22-bone rig (the
#: presets' largest) fits. More would stall Blender for minutes and take gigabytes; a Motion file may
#: hold more (converters/motion_file.py bounds its frames, joints and bytes, not Blender's time).
MAX_BONE_KEYS = 5_000_000


def _finish(context: Any, op: Any, motions: Sequence[Path], names: Sequence[str], video: Path | None = None,
            camera_name: str | None = None) -> set[str]:
    """Put the Motions into the scene, ``names[i]`` for ``motions[i]``: one per person, all in the
    one world the engine solved them in (a Motion file for person all is already placed in it);
    ``op.target`` NEW makes an armature each, SELECTED drives the selected armatures in order (the
    active one, then the others by name); the video's camera, when the first file holds it, as a
    camera ``camera_name`` with ``video`` (converted from ``op.start``) behind it. The report says
    what was made, and who was left out."""
    from .scene import Footage, place_people
    from .vendor.errors import Vp3dError
    from .vendor.motion_file import load_motion_file

    found = []
    for path in motions:
        try:
            found.append(load_motion_file(path))
        except Vp3dError as exc:
            op.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
    keys = sum(f.motion.num_frames * len(f.motion.rig.names) for f in found)
    if keys > MAX_BONE_KEYS:
        first = found[0].motion
        what = f"{motions[0]}: {first.num_frames:,} frames of {len(first.rig.names)} bones" if len(found) == 1 \
            else f"{len(found)} people"
        op.report({"ERROR"}, f"{what}, {keys:,} bone keys, more than the {MAX_BONE_KEYS:,} the add-on bakes at once "
                             "(an hour at 60 fps of a 22-bone rig); split the take (vp3d-convert --start/--end) or "
                             "convert it at a lower frame rate")
        return {"CANCELLED"}
    footage = None if video is None else Footage(video, float(getattr(op, "start", 0.0) or 0.0))
    placed = place_people(context, list(zip(names, found, strict=True)), op.target, op.frame_start, op.fps_mode,
                          op.report, footage, camera_name)
    return {"FINISHED"} if placed else {"CANCELLED"}


def _check_target(op: Any, context: Any) -> bool:
    if op.target == "SELECTED" and (context.active_object is None or context.active_object.type != "ARMATURE"):
        op.report({"ERROR"}, "select the armature to drive (target: selected armature), or choose a new armature")
        return False
    return True


class VP3D_OT_import_video(bpy.types.Operator):
    """Turn a video of a person into an animated armature (or drive the selected one)"""

    bl_idname = "vp3d.import_video"
    bl_label = "Pose from video (.mp4, .mov, ...)"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: StringProperty(default=";".join("*" + s for s in VIDEO_SUFFIXES),  # type: ignore[valid-type]
                                options={"HIDDEN"})
    __annotations__.update(_options_props())

    _timer: Any = None

    def invoke(self, context: Any, event: Any) -> set[str]:
        if not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def draw(self, context: Any) -> None:  # the file browser's side bar (File > Import)
        self.layout.prop(self, "engine", expand=True)
        if self.engine == "LOCAL":
            draw_convert_notice(self.layout, context)
        draw_options(self.layout, self)

    def _start(self, context: Any) -> Job | None:
        video = Path(bpy.path.abspath(self.filepath))
        if not video.is_file():
            self.report({"ERROR"}, f"no video at {video}: choose a video file")
            return None
        if not _check_target(self, context):
            return None
        prefs = preferences(context)
        try:
            options = engine_options(**{name: getattr(self, name) for name in ENGINE_OPTIONS})
            if self.target == "SELECTED":
                options["rig"] = "mixamo"  # retargeted through the bone map, from Mixamo's names
            if self.engine == "REMOTE":
                return RemoteJob(prefs.server_url, prefs.token, video, options)
            executable, configured = local_convert(context)
            if executable is None:
                raise EngineError(convert_not_found(configured))
            return LocalJob(executable, video, options)
        except EngineError as exc:
            self.report({"ERROR"}, str(exc))
            return None

    def execute(self, context: Any) -> set[str]:
        if _JOBS:
            self.report({"ERROR"}, "vp3d is already converting a video; wait or cancel it")
            return {"CANCELLED"}
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        if bpy.app.background:  # no event loop: run to the end before returning
            try:
                status = job.wait()
                return self._end(context, job, status)
            finally:
                job.close()
        _JOBS[id(self)] = job
        wm = context.window_manager
        wm.vp3d_running, wm.vp3d_progress, wm.vp3d_status = True, 0.0, "starting"
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _end(self, context: Any, job: Job, status: Any) -> set[str]:
        if status.state == "done":
            stem = Path(self.filepath).stem  # each person's armature is named for them: STEM.p0, STEM.p2
            people = [person_of(p) if self.person == "all" else None for p in status.motions]
            return _finish(context, self, status.motions, [stem if n is None else f"{stem}.p{n}" for n in people],
                           Path(bpy.path.abspath(self.filepath)), f"{stem} camera")
        if status.state == "cancelled":
            self.report({"WARNING"}, "vp3d: cancelled; nothing was added")
            return {"CANCELLED"}
        self.report({"ERROR"}, f"vp3d: {status.message}")
        return {"CANCELLED"}

    def _cleanup(self, context: Any) -> None:
        job = _JOBS.pop(id(self), None)
        if job is not None:
            job.close()
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.vp3d_running, wm.vp3d_cancel = False, False
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        _redraw(context)

    def modal(self, context: Any, event: Any) -> set[str]:
        job = _JOBS.get(id(self))
        if job is None:
            self._cleanup(context)
            return {"CANCELLED"}
        wm = context.window_manager
        if event.type == "ESC" or wm.vp3d_cancel:
            job.cancel()
            self._cleanup(context)
            self.report({"WARNING"}, "vp3d: cancelled; nothing was added")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        status = tick(job, wm, context.workspace)
        if status.state == "running":
            _redraw(context)
            return {"PASS_THROUGH"}
        try:
            return self._end(context, job, status)
        finally:
            self._cleanup(context)

    def cancel(self, context: Any) -> None:  # Blender closing the operator (file closed, add-on disabled)
        job = _JOBS.get(id(self))
        if job is not None:
            job.cancel()
        self._cleanup(context)


def tick(job: Job, wm: Any, workspace: Any) -> Any:
    """One timer tick of the running import: the job's status, shown in the panel (the window
    manager's progress properties) and in the status bar while it runs."""
    status = job.poll()
    if status.state == "running":
        wm.vp3d_progress, wm.vp3d_status = status.fraction, status.stage
        if workspace is not None:
            workspace.status_text_set(f"vp3d: {status.stage} {status.fraction:.0%} (Esc to cancel)")
    return status


def _redraw(context: Any) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


class VP3D_OT_import_motion(bpy.types.Operator):
    """Import a vp3d Motion file (.motion.npz) computed elsewhere"""

    bl_idname = "vp3d.import_motion"
    bl_label = "vp3d motion (.motion.npz)"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.motion.npz;*.npz", options={"HIDDEN"})  # type: ignore[valid-type]
    target: EnumProperty(name="Target", items=TARGETS, default="NEW")  # type: ignore[valid-type]
    frame_start: IntProperty(name="Start frame", default=1)  # type: ignore[valid-type]
    fps_mode: EnumProperty(name="Frame rate", items=FPS_MODES, default="SET_SCENE")  # type: ignore[valid-type]

    def invoke(self, context: Any, event: Any) -> set[str]:
        if not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def execute(self, context: Any) -> set[str]:
        path = Path(bpy.path.abspath(self.filepath))
        if not _check_target(self, context):
            return {"CANCELLED"}
        name = path.name.removesuffix(".motion.npz").removesuffix(".npz")
        return _finish(context, self, [path], [name])


class VP3D_OT_cancel(bpy.types.Operator):
    """Stop the running conversion (nothing is added)"""

    bl_idname = "vp3d.cancel"
    bl_label = "Cancel"

    def execute(self, context: Any) -> set[str]:
        context.window_manager.vp3d_cancel = True
        return {"FINISHED"}


class VP3D_OT_refresh_backends(bpy.types.Operator):
    """Ask the engine which detectors and lifters it has"""

    bl_idname = "vp3d.refresh_backends"
    bl_label = "Refresh engine menus"

    def execute(self, context: Any) -> set[str]:
        settings, prefs = context.scene.vp3d, preferences(context)
        try:
            if settings.engine == "REMOTE":
                found = list_backends_remote(prefs.server_url, prefs.token)
            else:
                executable, configured = local_convert(context)
                if executable is None:
                    raise EngineError(convert_not_found(configured))
                found = list_backends_local(executable)
        except EngineError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        detectors = [(d["name"], d["name"], d["description"]) for d in found["detectors"]]
        checkpoints = [(c["name"], c["name"], c["lifter"]) for c in found["checkpoints"]]
        _BACKENDS["detectors"] = detectors or _BACKENDS["detectors"]
        _BACKENDS["checkpoints"] = checkpoints or _BACKENDS["checkpoints"]
        self.report({"INFO"}, f"vp3d: {len(_BACKENDS['detectors'])} detectors, {len(checkpoints)} lifters")
        return {"FINISHED"}


class VP3D_OT_detect_bone_map(bpy.types.Operator):
    """Match the selected armature's bones to body parts by their names (Mixamo, Rigify, Unreal, ...)"""

    bl_idname = "vp3d.detect_bone_map"
    bl_label = "Detect bone map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: Any) -> set[str]:
        from .scene import ensure_bone_map

        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            self.report({"ERROR"}, "select an armature")
            return {"CANCELLED"}
        obj.vp3d_bone_map.clear()
        convention, mapped = ensure_bone_map(obj)
        self.report({"INFO"}, f"vp3d: {mapped} body parts matched ({convention} names)")
        return {"FINISHED"}


CLASSES = (VP3D_AddonPreferences, VP3D_BoneMapItem, VP3D_Settings, VP3D_OT_import_video, VP3D_OT_import_motion,
           VP3D_OT_cancel, VP3D_OT_refresh_backends, VP3D_OT_detect_bone_map, VP3D_UL_bone_map, VP3D_PT_import,
           VP3D_PT_bone_map)
_PROPERTIES = ((bpy.types.Scene, "vp3d"), (bpy.types.Object, "vp3d_bone_map"),
               (bpy.types.Object, "vp3d_bone_map_index"), (bpy.types.Object, "vp3d_bone_map_naming"),
               (bpy.types.WindowManager, "vp3d_running"), (bpy.types.WindowManager, "vp3d_progress"),
               (bpy.types.WindowManager, "vp3d_status"), (bpy.types.WindowManager, "vp3d_cancel"))


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.vp3d = PointerProperty(type=VP3D_Settings)
    bpy.types.Object.vp3d_bone_map = CollectionProperty(type=VP3D_BoneMapItem)
    bpy.types.Object.vp3d_bone_map_index = IntProperty()
    bpy.types.Object.vp3d_bone_map_naming = StringProperty(
        name="Bone naming", description="the naming the bone map was detected from (mixamo, ue, rigify, names)")
    bpy.types.WindowManager.vp3d_running = BoolProperty(default=False)
    bpy.types.WindowManager.vp3d_progress = FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    bpy.types.WindowManager.vp3d_status = StringProperty()
    bpy.types.WindowManager.vp3d_cancel = BoolProperty(default=False)
    bpy.types.TOPBAR_MT_file_import.append(menu_video)
    bpy.types.TOPBAR_MT_file_import.append(menu_motion)


def unregister() -> None:
    for job in list(_JOBS.values()):  # a conversion still running: stop it, remove its files
        job.cancel()
    _JOBS.clear()
    bpy.types.TOPBAR_MT_file_import.remove(menu_motion)
    bpy.types.TOPBAR_MT_file_import.remove(menu_video)
    for owner, name in _PROPERTIES:
        if hasattr(owner, name):
            delattr(owner, name)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)

