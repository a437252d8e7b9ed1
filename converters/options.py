"""The options of a conversion, defined once: every door derives from this table.

Each :class:`Option` has a name (the field of the options, the service's form field, and, with ``-``
for ``_``, the CLI flag), a kind, a default, its choices or bounds, help text and the doors that offer
it (``cli``: ``vp3d-convert``; ``service``: the form of ``vp3d serve``; ``addon``: the Blender
panel). ``vp3d-convert``'s argparse, the service's form parser, the add-on's menus and ``vp3d list
--json`` are all made from :data:`OPTIONS`; the engine turns checked values into its typed
``ConvertOptions`` (``vp3d_engine/options.py``) and checks the options that depend on each other
there, once, before any work.

Kinds: ``choice`` (one of ``choices``, or of the names a ``registry`` of the engine knows:
``detectors``, ``lifters``, ``checkpoints``), ``number`` and ``integer`` (from ``low`` to ``high``;
NaN and infinities never pass; an ``integer`` with ``choices`` also takes those words, as ``person``
takes ``all``), ``text`` (at most :data:`MAX_TEXT` characters), ``flag`` (on or off),
``size`` (``WIDTHxHEIGHT``), ``smooth`` (a smoothing filter spec, checked by
``converters.smoothing``), ``formats`` (a set of output formats: one flag each in the CLI, a comma
list in the service).

Standard library only: the Blender add-on bundles this module (``build_addon.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from converters.errors import ConfigurationError

__all__ = ["DOORS", "MAX_TEXT", "OPTIONS", "Choice", "Option", "check_value", "default_values", "option",
           "options_for", "parse_text", "to_cli_arguments", "to_form_fields"]

DOORS = ("cli", "service", "addon")
ALL = frozenset(DOORS)
CLI = frozenset({"cli"})
REMOTE = frozenset({"cli", "service"})
#: Longest text value (a smoothing spec, a checkpoint name or path) any door takes.
MAX_TEXT = 256


@dataclass(frozen=True)
class Choice:
    value: str
    label: str = ""
    help: str = ""


@dataclass(frozen=True)
class Option:
    name: str
    kind: str
    default: Any
    help: str
    label: str = ""
    choices: tuple[Choice, ...] = ()
    registry: str = ""
    low: float | None = None
    high: float | None = None
    doors: frozenset[str] = ALL
    #: A default that differs by door (the animation doors make Mixamo rigs, the CLI Human3.6M).
    door_defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Where the value goes in the engine's ``ConvertOptions`` (``pipeline.x`` or ``x``).
    target: str = ""
    metavar: str = ""
    #: The unit of a number, said with its bounds ("seconds").
    unit: str = ""
    #: What a ``flag`` that is on sets its target to (``--no-flip`` sets ``flip`` to False); a flag
    #: that is off leaves the target at its default.
    flag_value: Any = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def default_for(self, door: str) -> Any:
        return self.door_defaults.get(door, self.default)

    def values(self) -> list[str]:
        return [c.value for c in self.choices]

    def bounds_text(self) -> str:
        text = f"from {_num(self.low)} to {_num(self.high)}" if self.high is not None else f"{_num(self.low)} or more"
        return f"{text} {self.unit}" if self.unit else text


def _num(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None and float(value).is_integer() else f"{value:g}"


def _choices(*items: tuple[str, str, str]) -> tuple[Choice, ...]:
    return tuple(Choice(*item) for item in items)


OPTIONS: tuple[Option, ...] = (
    # 2D and lifting
    Option("detector", "choice", "mediapipe", "2D keypoint detector", "Detector", registry="detectors",
           target="pipeline.detector"),
    Option("lifter", "choice", "videopose3d", "how the 2D becomes 3D: a checkpoint's temporal CNN, or MediaPipe's own "
           "3D (blazepose-world, for comparison)", "Lifter", registry="lifters", doors=REMOTE,
           target="pipeline.lifter"),
    Option("checkpoint", "text", "default", "the lifter's checkpoint: an installed name (vp3d list), or in "
           "vp3d-convert a folder or an original VideoPose3D .bin", "Checkpoint", registry="checkpoints",
           target="pipeline.checkpoint"),
    Option("device", "choice", "auto", "where the lifter runs (auto: a GPU when torch sees one)",
           choices=_choices(("auto", "Auto", "a GPU when there is one"), ("cpu", "CPU", ""), ("cuda", "CUDA", "")),
           doors=CLI, target="pipeline.device"),
    Option("start", "number", None, "seconds into the video to start at", "From (s)", low=0, high=1e7,
           target="pipeline.start", metavar="SECONDS", unit="seconds"),
    Option("end", "number", None, "seconds into the video to end at", "To (s)", low=0, high=1e7,
           target="pipeline.end", metavar="SECONDS", unit="seconds"),
    Option("stride", "integer", 1, "use every N-th frame", low=1, high=1000, doors=CLI, target="pipeline.stride",
           metavar="N"),
    Option("person", "integer", 0, "who to convert: 0, the main subject; 1, 2...: the others, by how large and "
           "clearly they are seen (with the default detector, MediaPipe runs once more per person: person 1 takes "
           "twice as long); all: everyone in at least --min-presence of the frames, each in their own files "
           "(NAME.p0.bvh, ...) and together in one GLB and FBX (detector blazepose-multi)", "Person", low=0, high=9,
           choices=_choices(("all", "Everyone", "every person seen for at least the minimum presence")),
           target="pipeline.person", metavar="N|all"),
    Option("min_presence", "number", 0.3, "with --person all: the share of the frames a person must be seen in to be "
           "converted (shorter appearances are passers-by)", "Minimum presence", low=0, high=1,
           target="pipeline.min_presence", metavar="SHARE"),
    Option("image_size", "size", None, "image size of a 2D file that does not record it (pixels, e.g. 1920x1080)",
           doors=CLI, target="pipeline.image_size", metavar="WxH"),
    Option("fps", "number", None, "frame rate of a 2D or 3D file that does not record it (default 30)", low=1,
           high=1000, doors=CLI, target="pipeline.fps", unit="frames per second"),
    Option("no_flip", "flag", False, "no test-time flip augmentation (faster)", doors=CLI, target="pipeline.flip",
           flag_value=False),
    Option("workers", "integer", None, "detection processes for videos longer than 10 s (default: one per core; "
           "1: none)", low=1, high=64, doors=CLI, target="pipeline.workers", metavar="N"),
    Option("resample", "choice", "checkpoint", "lift at the frame rate the checkpoint was trained at, resampling the "
           "clip, or lift the frames as they come (as the original VideoPose3D code does)",
           choices=_choices(("checkpoint", "Checkpoint's rate", ""), ("none", "As they come", "")), doors=CLI,
           target="pipeline.resample"),
    Option("trajectory", "choice", "image", "the root's path: its depth steadied and its travel matched to the 2D "
           "of the pelvis, or the trajectory model's output as it is", "Trajectory",
           choices=_choices(("image", "From the image", "matched to the 2D"),
                            ("model", "Model", "the trajectory model's output")),
           doors=REMOTE, target="pipeline.trajectory"),
    Option("label_swaps", "choice", "fix", "where the detector labels the whole body mirrored for a while (left for "
           "right), relabel those frames (fix), or keep the detector's labels", "Left/right swaps",
           choices=_choices(("fix", "Fix", "relabel mirrored stretches"), ("keep", "Keep", "as detected")),
           doors=REMOTE, target="pipeline.label_swaps"),
    Option("mediapipe_3d", "number", 0.5, "share of MediaPipe's own 3D averaged into the lifted pose (0: the lifter "
           "alone; 0.5 is closest to a 4-camera reference)", "MediaPipe 3D", low=0, high=1,
           target="pipeline.mediapipe_3d", metavar="SHARE"),
    Option("camera", "choice", "auto", "the camera's own motion: auto (estimated from the background; turned away "
           "from the animation when it pans, tilts or shakes), static (a tripod: not estimated), moving (the "
           "estimate taken out even where it finds the camera still)", "Camera",
           choices=_choices(("auto", "Auto", "estimated; applied when the camera turns"),
                            ("static", "Static", "a tripod: nothing estimated"),
                            ("moving", "Moving", "the estimate taken out even where small")), target="pipeline.camera"),
    Option("focal", "number", None, "the video's focal length in pixels (default: estimated from a turning camera, "
           "else 0.9 x the long side)", "Focal length (px)", low=10, high=100_000, target="pipeline.focal",
           metavar="PIXELS", unit="pixels"),
    # the animation
    Option("rig", "choice", "h36m", "skeleton of the animation files", "Rig",
           choices=_choices(("mixamo", "Mixamo", "mixamorig: bone names and hierarchy"),
                            ("ue", "Unreal mannequin", "UE5 names"),
                            ("h36m", "Human3.6M (17 joints)", "vp3d's native skeleton")),
           door_defaults={"service": "mixamo", "addon": "mixamo"}, target="rig"),
    Option("bvh_units", "choice", "cm", "units of BVH and FBX files",
           choices=_choices(("cm", "Centimetres", ""), ("m", "Metres", "")), doors=CLI, target="units"),
    Option("smooth", "smooth", "auto", "smoothing of the 3D joints before the animation is solved: auto (one-euro "
           "on joints lifted from video, none on motion capture), none, oneeuro, savgol, butter, with parameters "
           "(e.g. oneeuro:mincutoff=3,beta=1)", "Smoothing", target="smoothing", metavar="FILTER[:K=V,...]"),
    Option("root_motion", "choice", "on", "the root's travel in the animation", "Root motion",
           choices=_choices(("on", "On", "the root travels as in the video"),
                            ("in-place", "In place", "keep the root's height (jumps, crouches), not its travel"),
                            ("off", "Off", "the root stays where it starts")), target="root_motion"),
    Option("feet", "choice", "lock", "foot locking", "Foot locking",
           choices=_choices(("lock", "Lock", "a planted foot stays put, no foot goes through the floor"),
                            ("off", "Off", "the feet as lifted")), target="feet"),
    Option("render_azimuth", "number", 30.0, "preview's 3D view: degrees around the subject", low=-360, high=360,
           doors=CLI, target="render.azimuth", metavar="DEGREES", unit="degrees"),
    Option("render_elevation", "number", 15.0, "preview's 3D view: degrees above the floor", low=-80, high=80,
           doors=CLI, target="render.elevation", metavar="DEGREES", unit="degrees"),
    Option("render_trail", "flag", False, "preview's 3D view: draw the root's path on the floor", doors=CLI,
           target="render.trail"),
    Option("formats", "formats", ("npz",), "files to write", "Files",
           choices=_choices(("npz", "NAME.npz", "3D joints, 2D keypoints and the root path (NumPy)"),
                            ("json", "NAME.json", "the same as JSON"),
                            ("motion", "NAME.motion.npz", "vp3d's Motion file (the Blender add-on and the web page "
                                                          "read it; docs/FORMATS.md)"),
                            ("bvh", "NAME.bvh", "BVH motion capture: Y up, joint rotations on the rig"),
                            ("glb", "NAME.glb", "a glTF 2.0 skeleton with its animation"),
                            ("fbx", "NAME.fbx", "FBX through Blender's exporter"),
                            ("render", "NAME_preview.mp4", "the video beside the 3D skeleton")),
           doors=REMOTE, door_defaults={"service": ("motion", "bvh", "glb", "npz")}, target="formats"),
)

_BY_NAME = {o.name: o for o in OPTIONS}


def option(name: str) -> Option:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigurationError(f"unknown option {name!r}; known: {', '.join(_BY_NAME)}") from None


def options_for(door: str) -> list[Option]:
    """The options ``door`` offers, in the table's order."""
    return [o for o in OPTIONS if door in o.doors]


def default_values(door: str) -> dict[str, Any]:
    return {o.name: o.default_for(door) for o in options_for(door)}


def _number(opt: Option, value: Any, text: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{opt.name} must be a number, not {text}")
    number = float(value)
    if not (math.isfinite(number) and (opt.low is None or number >= opt.low)
            and (opt.high is None or number <= opt.high)):
        raise ConfigurationError(f"{opt.name} must be {opt.bounds_text()}, not {text}")
    return number


def check_value(opt: Option, value: Any, choices: Iterable[str] | None = None) -> Any:
    """``value`` (already typed: a str, float, int, bool, tuple) checked against ``opt``; the
    value to use. ``choices``: the registry's names for a registry option (None: not checked here).
    Raises :class:`ConfigurationError` naming the option and what it takes."""
    if value is None:
        return None
    text = repr(value)[:80]
    if opt.kind == "choice":
        allowed = list(choices) if opt.registry and choices is not None else opt.values() or None
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            raise ConfigurationError(f"{opt.name} must be one of {', '.join(allowed or [])}, not {text}")
        return value
    if opt.kind == "number":
        return _number(opt, value, text)
    if opt.kind == "integer":
        if isinstance(value, str) and value in opt.values():  # a word it also takes (person: all)
            return value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            words = "".join(f" or {w}" for w in opt.values())
            raise ConfigurationError(f"{opt.name} must be a whole number{words}, not {text}")
        _number(opt, value, text)
        return value
    if opt.kind == "flag":
        if not isinstance(value, bool):
            raise ConfigurationError(f"{opt.name} must be true or false, not {text}")
        return value
    if opt.kind in ("text", "smooth"):
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT or not value.isprintable():
            raise ConfigurationError(f"{opt.name} must be a short line of text, not {text}")
        value = value.strip()
        if opt.kind == "smooth":
            value = _check_smooth(value)
        if opt.registry == "checkpoints" and choices is not None and value not in set(choices):
            raise ConfigurationError(f"checkpoint must be one of the installed checkpoints "
                                     f"({', '.join(choices)}), not {text}")
        return value
    if opt.kind == "size":
        ok = (isinstance(value, tuple | list) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000 for v in value))
        if not ok:
            raise ConfigurationError(f"{opt.name} must be WIDTHxHEIGHT in pixels, not {text}")
        return (int(value[0]), int(value[1]))
    if opt.kind == "formats":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items or not all(isinstance(v, str) for v in items):
            raise ConfigurationError(f"{opt.name}: give one or more of {', '.join(opt.values())}")
        unknown = [v for v in items if v not in opt.values()]
        if unknown:
            raise ConfigurationError(f"{opt.name} are {', '.join(opt.values())}; not {', '.join(unknown)[:80]}")
        return tuple(v for v in opt.values() if v in items)
    raise ConfigurationError(f"option {opt.name} has an unknown kind {opt.kind!r}")  # a bug in this table


def _check_smooth(spec: str) -> str:
    """The smoothing spec written out in full (``auto`` as it is)."""
    if spec == "auto":
        return spec
    try:
        from converters.smoothing import parse_smooth
    except ImportError:  # the Blender add-on bundles no filters: the engine checks the spec
        return spec
    return str(parse_smooth(spec))


def parse_text(opt: Option, text: str, choices: Iterable[str] | None = None) -> Any:
    """A value as a door receives it (a command-line word, a form field) checked against ``opt``;
    an empty text is the default (None for options without one)."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise ConfigurationError(f"{opt.name} is longer than {MAX_TEXT} characters")
    text = text.strip()
    if not text:
        return None
    value: Any = text
    if opt.kind == "integer" and text in opt.values():
        value = text
    elif opt.kind in ("number", "integer"):
        try:
            value = float(text) if opt.kind == "number" else int(text)
        except ValueError:
            kind = "a number" if opt.kind == "number" else "a whole number" + "".join(f" or {w}" for w in opt.values())
            raise ConfigurationError(f"{opt.name} must be {kind}, not {text[:80]!r}") from None
    elif opt.kind == "flag":
        lowered = text.lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ConfigurationError(f"{opt.name} must be true or false, not {text[:80]!r}")
        value = lowered in ("1", "true", "yes", "on")
    elif opt.kind == "size":
        w, sep, h = text.lower().partition("x")
        if not (sep and w.isdigit() and h.isdigit()):
            raise ConfigurationError(f"{opt.name}: {text[:80]!r} is not WIDTHxHEIGHT in pixels (e.g. 1920x1080)")
        value = (int(w), int(h))
    elif opt.kind == "formats":
        value = [f.strip() for f in text.split(",") if f.strip()]
    return check_value(opt, value, choices)


def _word(opt: Option, value: Any) -> str:
    if opt.kind == "formats":
        return ",".join(value)
    if opt.kind == "size":
        return f"{value[0]}x{value[1]}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def to_cli_arguments(values: Mapping[str, Any]) -> list[str]:
    """``vp3d-convert`` arguments for these option values (None and unset flags are left out;
    formats become their flags)."""
    args: list[str] = []
    for name, value in values.items():
        opt = option(name)
        if value is None or "cli" not in opt.doors:
            continue
        if opt.kind == "flag":
            if value:
                args.append(opt.flag)
        elif opt.kind == "formats":
            args += [f"--{f}" for f in value]
        else:
            args += [opt.flag, _word(opt, value)]
    return args


def to_form_fields(values: Mapping[str, Any]) -> dict[str, str]:
    """The service's form fields for these option values (None left out)."""
    fields: dict[str, str] = {}
    for name, value in values.items():
        opt = option(name)
        if value is not None and "service" in opt.doors:
            fields[name] = ("true" if value else "false") if opt.kind == "flag" else _word(opt, value)
    return fields
