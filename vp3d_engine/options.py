"""The engine's side of the one options definition (:mod:`converters.options`).

- :class:`ConvertOptions` and :class:`PipelineOptions`: the typed options the stages take, their
  defaults from the table;
- :func:`registry_choices`: the names a registry option takes (detectors and lifters a user may
  choose, checkpoints installed here);
- :func:`build_options`: checked option values (name -> value, as the doors hold them) to the typed
  :class:`ConvertOptions`;
- :func:`check_options`: every value against the table and the options that depend on each other
  (``start`` before ``end``, a lifter that needs a detector, a checkpoint that exists), once, before
  any work; :func:`~vp3d_engine.convert.convert` calls it, and so does every door before it queues
  or plans anything;
- :func:`add_arguments` / :func:`values_from_args`: ``vp3d-convert``'s argparse;
  :func:`values_from_form`: the service's form; :func:`describe_options`: the table as JSON
  (``vp3d list --json``, ``GET /api/backends``) for programs that build menus from it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.errors import CheckpointError, ConfigurationError
from converters.options import OPTIONS, Option, check_value, option, options_for, parse_text
from vp3d_engine.render import RenderOptions

__all__ = ["ConvertOptions", "PipelineOptions", "add_arguments", "bounded", "build_options", "check_options",
           "describe_options", "registry_choices", "values_from_args", "values_from_form"]


@dataclass
class PipelineOptions:
    """The 2D-to-3D options; what each takes, and its default, is in :mod:`converters.options`
    (checked by :func:`check_options`)."""

    detector: str = option("detector").default
    lifter: str = option("lifter").default
    checkpoint: str = option("checkpoint").default
    device: str = option("device").default
    start: float | None = None
    end: float | None = None
    stride: int = option("stride").default
    person: int | str = option("person").default  # a number, or "all" (everyone: pipeline.run_people)
    min_presence: float = option("min_presence").default  # person all: the share of frames a person is seen in
    keypoints: Path | None = None  # 2D keypoints from a file: skips decoding and detection
    image_size: tuple[int, int] | None = None  # of the keypoints file, when it does not say (or says wrong)
    fps: float | None = None  # of the keypoints file, when it does not say
    flip: bool | None = None  # None: as the checkpoint says
    resample: str = option("resample").default  # "none": lift frames as they come (the original procedure)
    workers: int | None = None  # detection processes for long videos; None: one per core
    trajectory: str = option("trajectory").default  # "model": the trajectory model's root as it is
    label_swaps: str = option("label_swaps").default  # "keep": the detector's left/right labels as they are
    # Share of MediaPipe's own 3D averaged into the lifted pose (vp3d_engine.lifters.blend); it
    # applies where MediaPipe detected the video, or to a vp3d result file that kept its 3D (not to
    # other keypoint files); 0: the lifter alone.
    mediapipe_3d: float = option("mediapipe_3d").default
    camera: str = option("camera").default  # auto | static | moving (vp3d_engine.camera_motion)
    focal: float | None = None  # the video's focal length in pixels; None: estimated


@dataclass
class ConvertOptions:
    """What to make: the 2D-to-3D options, the rig preset, the units of BVH/FBX, the formats. What
    each option takes, and its default, is in :mod:`converters.options`; the doors build these with
    :func:`build_options`, which checks them."""

    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    rig: str = option("rig").default
    units: str = option("bvh_units").default
    formats: list[str] = field(default_factory=lambda: list(option("formats").default))
    render: RenderOptions = field(default_factory=RenderOptions)
    root_motion: str = option("root_motion").default  # "in-place": no travel over the floor; "off": stays put
    smoothing: str = option("smooth").default  # converters.smoothing spec for the world joints
    feet: str = option("feet").default  # "off": no foot locking (converters.feet)


def registry_choices(opt: Option, door: str = "cli") -> list[str] | None:
    """The names a registry option takes at ``door`` (None: not a registry option, or, for the
    CLI's checkpoint, any name or path, checked when it is resolved)."""
    if opt.registry == "detectors":
        from vp3d_engine.detectors.registry import detector_names

        return detector_names(public=True)
    if opt.registry == "lifters":
        from vp3d_engine.lifters.registry import lifter_names

        return lifter_names(public=True)
    if opt.registry == "checkpoints" and door != "cli":
        from vp3d_engine.checkpoints import installed_checkpoints

        return sorted(installed_checkpoints())
    return None


def _target(options: Any, opt: Option) -> Any:
    for part in opt.target.split("."):
        options = getattr(options, part)
    return options


def build_options(values: Mapping[str, Any], door: str = "cli", *, local: bool = True) -> ConvertOptions:
    """The typed options for ``values`` (option name -> value; missing names keep their default
    for ``door``), checked by :func:`check_options`."""
    groups: dict[str, dict[str, Any]] = {"pipeline": {}, "render": {}, "": {}}
    for opt in options_for(door):
        value = values.get(opt.name, opt.default_for(door))
        group, _, name = opt.target.rpartition(".")
        if opt.kind == "flag":
            if not value:
                continue  # an unset flag leaves its target at the default
            value = opt.flag_value
        elif opt.kind == "formats":
            value = list(value) if value else None
            if value is None:
                continue
        groups[group][name] = value
    unknown = sorted(set(values) - {o.name for o in options_for(door)})
    if unknown:
        raise ConfigurationError(f"unknown option(s) {', '.join(unknown)}")
    options = ConvertOptions(pipeline=PipelineOptions(**groups["pipeline"]), render=RenderOptions(**groups["render"]),
                             **groups[""])
    check_options(options, door, local=local)
    return options


def check_options(options: ConvertOptions, door: str = "cli", *, local: bool = True) -> None:
    """Every option of ``options`` against the table, then the options that depend on each other.
    ``local``: the lifter's checkpoint is loaded on this machine, so it must be found here (a
    cluster's workers find theirs). Raises :class:`ConfigurationError` (or
    :class:`CheckpointError`) saying which option is wrong and what it takes."""
    from vp3d_engine.lifters.registry import lifter_spec

    for opt in OPTIONS:
        value = _target(options, opt)
        if opt.kind == "flag":
            if value not in (opt.flag_value, opt.default, None, False):
                raise ConfigurationError(f"{opt.name} must be on or off, not {value!r}")
            continue
        check_value(opt, value, registry_choices(opt, door) if door in opt.doors else registry_choices(opt))
    p = options.pipeline
    if p.start is not None and p.end is not None and p.end <= p.start:
        raise ConfigurationError(f"end ({p.end:g} s) must come after start ({p.start:g} s)")
    if p.keypoints is not None and (p.start is not None or p.end is not None or p.stride != 1):
        raise ConfigurationError("start, end and stride select video frames to detect; with a keypoints file the "
                                 "frames come from the file: trim it instead")
    spec = lifter_spec(p.lifter)
    if spec.kind == "detector":
        from vp3d_engine.detectors.registry import detector_names, detector_spec

        if p.keypoints is not None or not detector_spec(p.detector).world_landmarks:
            able = [n for n in detector_names(public=True) if detector_spec(n).world_landmarks]
            raise ConfigurationError(f"lifter {p.lifter} takes its 3D from the detector's world landmarks: use "
                                     f"detector {' or '.join(able)}, and no keypoints file")
    elif local:
        from vp3d_engine.checkpoints import resolve_checkpoint

        try:
            resolve_checkpoint(p.checkpoint)
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint: {exc}") from None


# argparse (vp3d-convert)

def bounded(kind: type, low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` (int or float) from ``low`` to ``high``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be from {low:g}" + (f" to {high:g}" if high is not None else " up")
                                             + f", not {text}")
        return value
    return parse



def _argparse_type(opt: Option, door: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = parse_text(opt, text, registry_choices(opt, door))
        except ConfigurationError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{opt.name} ")) from None
        return opt.default_for(door) if value is None else value

    parse.__name__ = opt.kind  # argparse names the type in its "invalid ... value" message
    return parse


def _help(opt: Option, door: str) -> str:
    text = opt.help
    if opt.choices and opt.kind == "choice":
        text += ": " + "; ".join(f"{c.value}" + (f" ({c.help})" if c.help else "") for c in opt.choices)
    elif opt.low is not None:
        text += f" ({opt.bounds_text()})"
    default = opt.default_for(door)
    if default not in (None, False, "") and opt.kind != "formats":
        text += f"; default {default:g}" if isinstance(default, float) else f"; default {default}"
    return text.replace("%", "%%")


def add_arguments(parser: Any, door: str = "cli", names: tuple[str, ...] | None = None) -> None:
    """One argument per option ``door`` offers (the formats: one flag each) to ``parser`` (an
    argparse parser or group); ``names``: only these options."""
    for opt in options_for(door):
        if names is not None and opt.name not in names:
            continue
        if opt.kind == "formats":
            for c in opt.choices:
                parser.add_argument(f"--{c.value}", action="store_true", help=f"write {c.label}: {c.help}")
            continue
        if opt.kind == "flag":
            parser.add_argument(opt.flag, dest=opt.name, action="store_true", help=_help(opt, door))
            continue
        choices = registry_choices(opt, door) if opt.registry else opt.values()
        metavar = opt.metavar or ("{" + ",".join(choices) + "}" if choices else None)
        parser.add_argument(opt.flag, dest=opt.name, type=_argparse_type(opt, door), default=opt.default_for(door),
                            metavar=metavar, help=_help(opt, door))


def values_from_args(args: argparse.Namespace, door: str = "cli") -> dict[str, Any]:
    """The option values of parsed arguments (formats: those asked for, in the table's order)."""
    values: dict[str, Any] = {}
    for opt in options_for(door):
        if opt.kind == "formats":
            values[opt.name] = tuple(c.value for c in opt.choices if getattr(args, c.value, False))
        else:
            values[opt.name] = getattr(args, opt.name)
    return values


# the service's form

def values_from_form(form: Mapping[str, str], door: str = "service") -> dict[str, Any]:
    """Checked option values from form fields (text): only the options ``door`` offers, each
    checked; an empty or missing field is the default. A :class:`ConfigurationError` names the
    field that is wrong."""
    offered = {o.name: o for o in options_for(door)}
    unknown = sorted(k for k in form if k not in offered)
    if unknown:
        raise ConfigurationError(f"unknown field {unknown[0][:40]!r}; the fields are file, {', '.join(offered)}")
    values: dict[str, Any] = {}
    for name, opt in offered.items():
        value = parse_text(opt, form.get(name, ""), registry_choices(opt, door))
        values[name] = opt.default_for(door) if value is None else value
    build_options(values, door)  # the options that depend on each other
    return values


def describe_options(door: str | None = None) -> list[dict[str, Any]]:
    """The table as JSON (the doors, choices with the registries' current names, bounds, defaults)."""
    out = []
    for opt in OPTIONS:
        if door is not None and door not in opt.doors:
            continue
        entry: dict[str, Any] = {"name": opt.name, "kind": opt.kind, "flag": opt.flag, "label": opt.label or opt.name,
                                 "help": opt.help, "doors": sorted(opt.doors),
                                 "default": opt.default_for(door) if door else opt.default}
        if opt.door_defaults:
            entry["door_defaults"] = dict(opt.door_defaults)
        names = registry_choices(opt, door or "service") if opt.registry else None
        if opt.choices or names is not None:
            entry["choices"] = ([{"value": c.value, "label": c.label, "help": c.help} for c in opt.choices]
                                or [{"value": n, "label": n, "help": ""} for n in names or []])
        if opt.registry:
            entry["registry"] = opt.registry
        if opt.low is not None:
            entry["low"], entry["high"] = opt.low, opt.high
        out.append(entry)
    return out

