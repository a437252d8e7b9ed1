"""The add-on's settings: its preferences, the scene's settings (made from the options' one
definition, ``converters/options.py``, bundled as ``vendor/options.py``) and the menus the engine fills.

(No ``from __future__ import annotations`` here: Blender reads the property annotations of these
classes as objects.)"""

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .engine import find_convert
from .vendor.options import options_for

#: The add-on's module: ``vp3d_blender`` installed as a legacy add-on, ``bl_ext.<repository>.vp3d_blender``
#: as an extension (Blender 4.2+). Its preferences are found under this name either way.
ADDON = __package__ or "vp3d_blender"
ENGINES = [("LOCAL", "Local", "run vp3d-convert on this computer"),
           ("REMOTE", "Remote", "send the video to vp3d serve")]
TARGETS = [("NEW", "New armature", "a new armature in the rig's rest pose"),
           ("SELECTED", "Selected armature",
            "retarget onto the selected armature through its bone map (everyone: the selected armatures, one per "
            "person, the active one first, then the others by name)")]
FPS_MODES = [("SET_SCENE", "Set scene frame rate", "the scene takes the video's frame rate, one key per frame"),
             ("RETIME", "Retime to scene", "keep the scene's frame rate and space the keys to it")]
# Menus filled from what the engine reports; Blender needs the item lists kept alive.
_BACKENDS: dict[str, list[tuple[str, str, str]]] = {
    "detectors": [("mediapipe", "mediapipe", "MediaPipe BlazePose")],
    "checkpoints": [("default", "default", "the shipped lifter")],
}


def _detector_items(self: Any, context: Any) -> list[tuple[str, str, str]]:
    return _BACKENDS["detectors"]


def _checkpoint_items(self: Any, context: Any) -> list[tuple[str, str, str]]:
    return _BACKENDS["checkpoints"]


def preferences(context: Any) -> Any:
    return context.preferences.addons[ADDON].preferences


def local_convert(context: Any) -> tuple[str | None, str]:
    """The vp3d-convert the local engine would run (None: not found) and the path set for it."""
    prefs = preferences(context)
    configured = bpy.path.abspath(prefs.convert_path) if prefs.convert_path else ""
    return find_convert(configured), configured


class VP3D_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    convert_path: StringProperty(  # type: ignore[valid-type]
        name="vp3d-convert", subtype="FILE_PATH",
        description="the vp3d-convert program (empty: $VP3D_CONVERT, else found on PATH)")
    server_url: StringProperty(name="Service URL", default="http://127.0.0.1:8000",  # type: ignore[valid-type]
                               description="where `vp3d serve` listens")
    token: StringProperty(name="Token", subtype="PASSWORD",  # type: ignore[valid-type]
                          description="the service's bearer token, if it asks for one")

    def draw(self, context: Any) -> None:
        self.layout.prop(self, "convert_path")
        self.layout.prop(self, "server_url")
        self.layout.prop(self, "token")


class VP3D_BoneMapItem(bpy.types.PropertyGroup):
    role: StringProperty(name="Body part")  # type: ignore[valid-type]
    target: StringProperty(name="Bone")  # type: ignore[valid-type]


#: What the numbers of an integer menu mean, where the number alone does not say it.
_NUMBER_LABELS = {"person": {0: "main subject"}}


def _integer_items(opt: Any) -> list[tuple[str, str, str]]:
    """An integer option that also takes words (``person``: 0 to 9, or ``all``) as one menu: the
    numbers from its low to its high bound as text ("0"), then its words. The engine gets the number
    back from :func:`engine.engine_options`."""
    labels = _NUMBER_LABELS.get(opt.name, {})
    numbers = [(str(n), f"{n}: {labels[n]}" if n in labels else str(n), f"{opt.label or opt.name} {n}")
               for n in range(int(opt.low or 0), int(opt.high or 0) + 1)]
    return numbers + [(c.value, c.label or c.value, c.help) for c in opt.choices]


def _engine_props() -> dict[str, Any]:
    """A property per option the add-on offers, made from the options' one definition
    (``converters/options.py``): menus from their choices (the detectors and checkpoints from what
    the engine reports; an integer option with words, as ``person`` is, a menu of its numbers and
    words), bounds and defaults as the engine takes them; an option without a default shows 0 for
    unset."""
    props: dict[str, Any] = {}
    for opt in options_for("addon"):
        common = {"name": opt.label or opt.name, "description": opt.help}
        default = opt.default_for("addon")
        if opt.registry == "detectors":
            props[opt.name] = EnumProperty(items=_detector_items, **common)
        elif opt.registry == "checkpoints":
            props[opt.name] = EnumProperty(items=_checkpoint_items, **common)
        elif opt.kind == "choice":
            props[opt.name] = EnumProperty(items=[(c.value, c.label or c.value, c.help) for c in opt.choices],
                                           default=default, **common)
        elif opt.kind == "integer" and opt.choices:  # a number or a word (person: 0..9 or all)
            props[opt.name] = EnumProperty(items=_integer_items(opt), default=str(default), **common)
        elif opt.kind == "number":
            props[opt.name] = FloatProperty(min=opt.low, max=opt.high, default=default or 0.0, **common)
        elif opt.kind == "integer":
            props[opt.name] = IntProperty(min=int(opt.low or 0), max=int(opt.high or 2**31 - 1), default=default or 0,
                                          **common)
        elif opt.kind == "flag":
            props[opt.name] = BoolProperty(default=bool(default), **common)
        else:
            props[opt.name] = StringProperty(default=default or "", **common)
    return props


#: The engine's options the add-on offers (converters/options.py), then the panel's own settings
#: (how the result is put into the scene): the order the panel shows them in.
ENGINE_OPTIONS = tuple(o.name for o in options_for("addon"))
SCENE_SETTINGS = ("frame_start", "fps_mode", "target")


def _options_props() -> dict[str, Any]:
    return {
        "engine": EnumProperty(name="Engine", items=ENGINES, default="LOCAL"),
        **_engine_props(),
        "frame_start": IntProperty(name="Start frame", default=1),
        "target": EnumProperty(name="Target", items=TARGETS, default="NEW"),
        "fps_mode": EnumProperty(name="Frame rate", items=FPS_MODES, default="SET_SCENE"),
    }


VP3D_Settings = type("VP3D_Settings", (bpy.types.PropertyGroup,), {
    "__annotations__": {"filepath": StringProperty(name="Video", subtype="FILE_PATH"), **_options_props()}})
