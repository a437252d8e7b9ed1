"""What a worker of ``vp3d serve`` runs: the single pipeline function on an uploaded video."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

__all__ = ["make_runner", "options_from_form"]



def options_from_form(form: dict[str, str]) -> dict[str, Any]:
    """Checked job options from the upload's form fields, as the job stores them (option name ->
    value); a :class:`~converters.errors.ConfigurationError` says which field is wrong. The fields
    and what each takes are the service's options in :mod:`converters.options`."""
    from vp3d_engine.options import values_from_form

    values = values_from_form(form, "service")
    values["formats"] = list(values["formats"])
    return values


def make_runner() -> Callable[[Any, Callable[[str, float], None]], dict[str, Any]]:
    """A function that converts one task; the models it loads are kept for the next task."""
    from vp3d_engine.convert import Models, convert
    from vp3d_engine.options import build_options

    loaded: dict[tuple[str, str], Models] = {}

    def run(task: Any, progress: Callable[[str, float], None]) -> dict[str, Any]:
        options = build_options(task.options, "service")
        options = replace(options, pipeline=replace(options.pipeline, workers=1))
        models = loaded.setdefault((options.pipeline.lifter, options.pipeline.checkpoint), Models())
        out = Path(task.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        def overall(stage: str, fraction: float) -> None:  # detection is nearly all of the time
            progress(stage, 0.9 * fraction if stage == "detect" else 1.0 if stage == "write" else 0.9)

        conversion = convert(task.upload, options, out / task.stem, kind="video", models=models, progress=overall)
        return {"files": [p.name for p in conversion.files],
                "timings": {k: round(v, 3) for k, v in conversion.timings.items()}}

    return run
