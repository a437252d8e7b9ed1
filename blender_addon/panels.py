"""The add-on's panels (3D viewport sidebar, tab vp3d) and its File > Import menu entries."""

from typing import Any

import bpy

from .engine import PREFERENCES_PATH
from .settings import ADDON, ENGINE_OPTIONS, SCENE_SETTINGS, local_convert


def draw_options(layout: Any, owner: Any) -> None:
    """The engine's options and the scene settings of ``owner`` (the scene's settings or the operator)."""
    for name in (*ENGINE_OPTIONS, *SCENE_SETTINGS):
        row = layout.row()
        row.active = name != "min_presence" or owner.person == "all"  # only a conversion of everyone reads it
        row.prop(owner, name)


def draw_convert_notice(layout: Any, context: Any) -> None:
    """A box saying vp3d-convert is missing and where to set it, before Import is pressed."""
    found, configured = local_convert(context)
    if found is not None:
        return
    box = layout.box()
    box.label(text=f"vp3d-convert is not at {configured}" if configured else "vp3d-convert was not found",
              icon="ERROR")
    where = PREFERENCES_PATH.removeprefix("Edit > ").split(" > ")  # narrow side bar: two lines
    box.label(text="Set its path in " + " > ".join(where[:2]))
    box.label(text="> " + " > ".join(where[2:]))
    box.operator("preferences.addon_show", text="Open the add-on's preferences", icon="PREFERENCES").module = ADDON


class VP3D_UL_bone_map(bpy.types.UIList):
    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Any, active_data: Any,
                  active_property: Any, index: int = 0, flt_flag: int = 0) -> None:
        row = layout.row(align=True)
        row.label(text=item.role)
        row.prop_search(item, "target", data.data, "bones", text="")


class VP3D_PT_import(bpy.types.Panel):
    bl_label = "Import pose from video"
    bl_idname = "VP3D_PT_import"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "vp3d"

    def draw(self, context: Any) -> None:
        layout, settings, wm = self.layout, context.scene.vp3d, context.window_manager
        layout.prop(settings, "filepath")
        row = layout.row(align=True)
        row.prop(settings, "engine", expand=True)
        row.operator("vp3d.refresh_backends", text="", icon="FILE_REFRESH")
        if settings.engine == "LOCAL" and not wm.vp3d_running:
            draw_convert_notice(layout, context)
        draw_options(layout, settings)
        if wm.vp3d_running:
            layout.progress(factor=wm.vp3d_progress, text=f"{wm.vp3d_status} {wm.vp3d_progress:.0%}")
            layout.operator("vp3d.cancel", icon="CANCEL")
            return
        op = layout.operator("vp3d.import_video", text="Import", icon="IMPORT")
        op.filepath = settings.filepath
        for name in ("engine", *ENGINE_OPTIONS, *SCENE_SETTINGS):
            value = getattr(settings, name)
            if value != "":  # a menu the engine has not filled yet keeps its own
                setattr(op, name, value)


class VP3D_PT_bone_map(bpy.types.Panel):
    bl_label = "Bone map"
    bl_idname = "VP3D_PT_bone_map"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "vp3d"
    bl_parent_id = "VP3D_PT_import"

    def draw(self, context: Any) -> None:
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            self.layout.label(text="Select the armature to drive")
            return
        self.layout.operator("vp3d.detect_bone_map", icon="BONE_DATA")
        self.layout.template_list("VP3D_UL_bone_map", "", obj, "vp3d_bone_map", obj, "vp3d_bone_map_index", rows=8)


def menu_video(self: Any, context: Any) -> None:
    self.layout.operator("vp3d.import_video", text="Pose from video (.mp4, .mov, ...)")


def menu_motion(self: Any, context: Any) -> None:
    self.layout.operator("vp3d.import_motion", text="vp3d motion (.motion.npz)")
