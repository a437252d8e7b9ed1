"""What a worker of ``vp3d serve`` runs: the single pipeline function on an uploaded video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["JOB_FORMATS", "make_runner", "options_from_form"]

JOB_FORMATS = ("motion", "bvh", "glb", "npz", "json", "fbx", "render")
DEFAULT_FORMATS = ("motion", "bvh", "glb", "npz")


def options_from_form(form: dict[str, str]) -> dict[str, Any]:
    """Checked job options from the upload's form fields (a :class:`ConfigurationError` that says
    which field is wrong otherwise). Only known fields, only known values."""
    from converters.errors import ConfigurationError
    from converters.rigs import PRESETS
    from converters.smoothing import parse_smooth
    from vp3d_engine.detectors.registry import detector_names
    from vp3d_engine.lifters.registry import lifter_names
    from vp3d_engine.pipeline import PipelineOptions

    def choice(name: str, allowed: list[str] | tuple[str, ...], default: str) -> str:
        value = form.get(name, "").strip() or default
        if value not in allowed:
            raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    def number(name: str, low: float, high: float) -> float | None:
        text = form.get(name, "").strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number, not {text!r}") from None
        if not low <= value <= high:
            raise ConfigurationError(f"{name} must be from {low:g} to {high:g}, not {text}")
        return value

    formats = [f.strip() for f in (form.get("formats") or ",".join(DEFAULT_FORMATS)).split(",") if f.strip()]
    unknown = [f for f in formats if f not in JOB_FORMATS]
    if unknown or not formats:
        raise ConfigurationError(f"formats are {', '.join(JOB_FORMATS)}; not {', '.join(unknown) or 'none'}")
    smooth = form.get("smooth", "").strip() or "auto"
    if smooth != "auto":
        smooth = str(parse_smooth(smooth))
    checkpoint = form.get("checkpoint", "").strip() or "default"
    if not checkpoint.replace("-", "").replace("_", "").isalnum():  # a name, never a path
        raise ConfigurationError(f"checkpoint must be the name of an installed checkpoint, not {checkpoint!r}")
    person = number("person", 0, 9)
    share = number("mediapipe_3d", 0, 1)
    return {"detector": choice("detector", [d for d in detector_names() if d != "precomputed"], "mediapipe"),
            "lifter": choice("lifter", lifter_names(), "videopose3d"), "checkpoint": checkpoint,
            "rig": choice("rig", list(PRESETS), "mixamo"),
            "root_motion": choice("root_motion", ("on", "in-place", "off"), "on"),
            "feet": choice("feet", ("lock", "off"), "lock"), "smooth": smooth,
            "start": number("start", 0, 1e6), "end": number("end", 0, 1e6),
            "person": int(person or 0), "formats": sorted(set(formats), key=JOB_FORMATS.index),
            "mediapipe_3d": PipelineOptions().mediapipe_3d if share is None else share}


def make_runner() -> Callable[[Any, Callable[[str, float], None]], dict[str, Any]]:
    """A function that converts one task; the models it loads are kept for the next task."""
    from vp3d_engine.convert import ConvertOptions, Models, convert
    from vp3d_engine.pipeline import PipelineOptions

    loaded: dict[tuple[str, str], Models] = {}

    def run(task: Any, progress: Callable[[str, float], None]) -> dict[str, Any]:
        o = task.options
        pipeline = PipelineOptions(detector=o["detector"], lifter=o["lifter"], checkpoint=o["checkpoint"],
                                   start=o.get("start"), end=o.get("end"), person=o.get("person", 0), workers=1,
                                   mediapipe_3d=o.get("mediapipe_3d", PipelineOptions().mediapipe_3d))
        options = ConvertOptions(pipeline=pipeline, rig=o["rig"], root_motion=o["root_motion"], feet=o["feet"],
                                 smoothing=o["smooth"], formats=list(o["formats"]))
        models = loaded.setdefault((o["lifter"], o["checkpoint"]), Models())
        out = Path(task.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        def overall(stage: str, fraction: float) -> None:  # detection is nearly all of the time
            progress(stage, 0.9 * fraction if stage == "detect" else 1.0 if stage == "write" else 0.9)

        conversion = convert(task.upload, options, out / task.stem, kind="video", models=models, progress=overall)
        return {"files": [p.name for p in conversion.files],
                "timings": {k: round(v, 3) for k, v in conversion.timings.items()}}

    return run
