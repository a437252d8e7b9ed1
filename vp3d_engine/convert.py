"""One library function from a source to a Motion and its files: what the CLI, the service and the
Blender add-on call.

    convert(source, options, models=None, progress=None) -> Conversion

Stages, each a plain function over a typed value (their modules say more):

============  ==========================================  =====================================
stage         function                                    value
============  ==========================================  =====================================
detect        ``pipeline.detect`` (a video) or            ``pipeline.Detected``
              ``pipeline.read_2d`` (a 2D file)
track         ``pipeline.track``                          ``TrackResult`` (``Keypoints2D``)
lift          ``pipeline.lift``                           ``Pose3D`` (camera space)
world         ``world_stage.solve_people``                world joints ``(T,17,3)`` and the
              (``converters.world``, ``converters.feet``)  ``Motion`` solved onto the rig
              then ``converters.solve.solve``             (``WorldMotion``), one per person
write         ``outputs.write_people_files``              files, all or none (``render``: the
                                                          preview video)
============  ==========================================  =====================================

A 3D source (a result, a Motion file, a joints array, a BVH) starts at ``world``. Models are
loaded once by :func:`load_models` and passed in, so a batch or a service worker does not reload
them per clip. Progress is one callable ``(stage, fraction)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from converters.types import Pose3D
from vp3d_engine.detectors.registry import DetectorPool
from vp3d_engine.options import ConvertOptions, check_options
from vp3d_engine.pipeline import PipelineResult, load_lifter, run_people
from vp3d_engine.sources import SourceKind, classify_source

if TYPE_CHECKING:
    from vp3d_engine.camera_motion import CameraMotion
    from vp3d_engine.checkpoints import LoadedLifter

__all__ = ["STAGES", "Conversion", "ConvertOptions", "Models", "convert", "load_models"]

STAGES = ("detect", "track", "lift", "world", "write")
Progress = Callable[[str, float], None]


@dataclass
class Models:
    """Models loaded once and reused by the next conversions: the lifter (None for a lifter that
    takes its 3D from the detector) and the detectors (kept open; :meth:`close` closes them)."""

    lifter: LoadedLifter | None = None
    loaded: bool = False
    detectors: DetectorPool = field(default_factory=DetectorPool)

    def close(self) -> None:
        self.detectors.close()


def load_models(options: ConvertOptions) -> Models:
    return Models(lifter=load_lifter(options.pipeline), loaded=True)


@dataclass
class Conversion:
    """What :func:`convert` made: the files written, and the values of the stages that ran."""

    source: Path
    kind: SourceKind
    pose: Pose3D
    files: list[Path]
    result: PipelineResult | None = None  # the 2D-to-3D stages, for video and 2D sources (the first person)
    people: list[PipelineResult] = field(default_factory=list)  # everyone converted (person all), in --person order
    camera_note: str = ""  # what the output line says of the camera (vp3d_engine.jobs.conversion_line)
    timings: dict[str, float] = field(default_factory=dict)


def convert(source: str | Path, options: ConvertOptions, stem: str | Path, *, kind: SourceKind | None = None,
            keypoints: Path | None = None, models: Models | None = None, progress: Progress | None = None
            ) -> Conversion:
    """Convert ``source`` and write ``stem`` + each format's ending (all or none).

    ``kind`` says what the source is (default: from its name and content); ``keypoints`` is a 2D
    file lifted instead of detecting (``source`` is then the optional video). Raises
    :class:`~converters.errors.Vp3dError` subclasses with a message that says what to do.
    """
    from vp3d_engine.outputs import write_people_files
    from vp3d_engine.readers import load_pose_file
    from vp3d_engine.world_stage import solve_people

    path = Path(source)
    if keypoints is not None:
        kind = "keypoints"
    kind = kind or classify_source(path)
    given = keypoints if keypoints is not None else (path if kind == "keypoints" else None)
    check_options(replace(options, pipeline=replace(options.pipeline, keypoints=given)),
                  local=kind != "motion" and (models is None or not models.loaded))
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    result = None
    people: list[PipelineResult] = []
    t0 = time.perf_counter()
    if kind == "motion":
        pose = load_pose_file(path, fps=options.pipeline.fps)
    else:
        opts = replace(options.pipeline, keypoints=given)
        own = models is None
        models = models if models is not None else Models()
        try:
            if not models.loaded:  # filled in place: the caller's next conversion reuses it
                models.lifter, models.loaded = load_lifter(opts), True
            people = run_people(path, opts, report, lifter=models.lifter, detectors=models.detectors, checked=True)
        finally:
            if own:
                models.close()
        result = people[0]
        timings.update(result.timings)
        pose = result.pose
    report("world", 0.0)
    t3 = time.perf_counter()
    everyone = options.pipeline.person == "all" and kind != "motion"
    results: list[PipelineResult | None] = list(people) if people else [None]
    solved = solve_people([p.pose for p in people] if people else [pose], options.rig, options.root_motion,
                          options.smoothing, options.feet, everyone=everyone,
                          camera=result.camera if result is not None else None, camera_mode=options.pipeline.camera)
    timings["world_solve_s"] = time.perf_counter() - t3
    note = _camera_note(result.camera if result is not None else None, solved[0].camera is not None
                        and solved[0].camera.applied)
    report("write", 0.0)
    video = path if kind == "video" or (kind == "keypoints" and keypoints is not None and path.is_file()
                                        and path.resolve() != keypoints.resolve()) else None
    files = write_people_files(Path(stem), options.formats, list(zip(results, solved, strict=True)),
                               units=options.units, video=video, render=options.render,
                               span=(options.pipeline.start, options.pipeline.end), everyone=everyone)
    timings["write_s"] = time.perf_counter() - t3 - timings["world_solve_s"]
    timings["convert_s"] = time.perf_counter() - t0
    report("write", 1.0)
    return Conversion(source=path, kind=kind, pose=pose, files=files, result=result, timings=timings, people=people,
                      camera_note=note)


def _camera_note(camera: CameraMotion | None, applied: bool) -> str:
    """What the output line says of the camera ("" for a tripod left as it is, or none estimated)."""
    if camera is None:
        return ""
    if camera.reason:
        return f"camera taken as static ({camera.reason})"
    turned = camera.figures.get("max_angle_deg", 0.0)
    if not applied:
        return ""
    if camera.kind == "moving":
        return (f"the camera moved as well as turned (parallax {camera.figures.get('parallax_deg', 0.0):.1f} degrees): "
                f"its turns (up to {turned:.1f} degrees) taken out, its travel not")
    return f"camera turned up to {turned:.1f} degrees: taken out"

