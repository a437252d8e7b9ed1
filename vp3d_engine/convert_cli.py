"""``vp3d-convert``: video(s) to 3D joints files.

    vp3d-convert clip.mp4                      # writes clip.npz next to the video
    vp3d-convert videos/ --out results --json  # every video in a folder
    vp3d-convert clip.mp4 --keypoints clip_openpose/   # 2D from another tool, no detection
    vp3d-convert clip.mp4 --bvh --glb --fbx --rig mixamo  # animation files on a Mixamo-named rig
    vp3d-convert clip.npz --fbx --rig ue       # re-export an earlier result, no detection
    vp3d-convert take.bvh --out ue --fbx --rig ue  # retarget motion capture onto a preset

Exit status: 0 when every input converted, 2 when any failed (each failure is one line on stderr
saying what to do; the other inputs still run; a batch ends with "N converted, M failed"), 1 for a
bug in vp3d, 130/143 when interrupted (SIGINT/SIGTERM). No output ever replaces an input of the run;
each input's files are written as one set (all new or all as they were).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from converters.errors import ConfigurationError, Vp3dError
from converters.fileio import PathSet, check_input_path, check_output_folder, remove_stale_temps
from converters.interrupts import Interrupted, check_interrupted, interrupts_raise
from vp3d_engine.convert import ConvertOptions, Models
from vp3d_engine.jobs import Job, conversion_line, report_failure
from vp3d_engine.pipeline import PipelineOptions
from vp3d_engine.render import RenderOptions
from vp3d_engine.sources import VIDEO_SUFFIXES, classify_source, recorded_video_name

__all__ = ["main"]

log = logging.getLogger("vp3d-convert")

def _inputs(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and not any(p.glob("*_keypoints.json")):  # an OpenPose folder is one input
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise ConfigurationError(f"no videos in folder {p} (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
            out.extend(found)
        else:
            out.append(p)  # a missing or unreadable one fails on its own turn, with its reason
    return out


def _keypoints_job(path: Path, video: Path | None, args: argparse.Namespace, asked: list[str]) -> Job:
    """2D keypoints to lift: named after the video, else the video the file records, else the file."""
    if video is not None:
        name = video.stem
    else:
        recorded = recorded_video_name(path)
        name = Path(recorded).stem if recorded else (path.name if path.is_dir() else path.stem)
    out_dir = Path(args.out) if args.out else (video or path.resolve()).parent
    return Job(video or path, out_dir, name, asked or ["npz"], "keypoints", keypoints=path)


def _plan(args: argparse.Namespace, asked: list[str]) -> list[Job]:
    """Every input with its outputs, checked before any work: no two inputs write the same files,
    and no output lands on any input of the run (videos, 2D and 3D files, --keypoints,
    --checkpoint), compared as files (resolved paths, case, hard links), not as strings."""
    from vp3d_engine.outputs import MOTION_FORMATS

    sources = _inputs(args.inputs)
    if args.keypoints:
        if len(sources) > 1:
            raise ConfigurationError("--keypoints goes with one video (or none)")
        jobs = [_keypoints_job(Path(args.keypoints), sources[0] if sources else None, args, asked)]
    else:
        if not sources:
            raise ConfigurationError("nothing to convert: give videos, folders, 2D or 3D files, or --keypoints FILE")
        jobs = []
        for source in sources:
            out_dir = Path(args.out) if args.out else source.parent
            try:
                kind = classify_source(source) if os.path.lexists(source) else "video"
            except Vp3dError as exc:
                jobs.append(Job(source, out_dir, source.stem, [], error=exc))
                continue
            if kind == "keypoints":
                jobs.append(_keypoints_job(source, None, args, asked))
                continue
            if kind == "motion":
                others = [f for f in asked if f not in MOTION_FORMATS]
                if others:
                    raise ConfigurationError(f"{source} is already 3D; from it only --motion, --bvh, --glb and --fbx "
                                             f"can be written (not --{' --'.join(others)})")
                if not asked:
                    raise ConfigurationError(f"{source} is already 3D: say which files to write from it "
                                             "(--motion, --bvh, --glb, --fbx)")
            name = source.name[: -len(".motion.npz")] if source.name.endswith(".motion.npz") else source.stem
            jobs.append(Job(source, out_dir, name, asked if kind == "motion" else (asked or ["npz"]), kind))
    inputs = PathSet()
    for job in jobs:
        inputs.add(job.source)
    for extra in (args.keypoints, _checkpoint_path(args.checkpoint)):
        if extra and os.path.lexists(extra):
            inputs.add(extra)
            if os.path.isdir(extra):
                for child in Path(extra).iterdir():
                    inputs.add(child)
    stems = PathSet()
    for job in jobs:
        if job.error is not None:
            continue
        other = stems.find(job.stem)
        if other is not None:
            raise ConfigurationError(f"{other} and {job.source} would write the same {job.stem}.* files; rename "
                                     "one or convert them into different --out folders")
        stems.add(job.stem, label=job.source)
        for target in job.targets:
            hit = inputs.find(target)
            if hit is not None:
                raise ConfigurationError(f"writing {target} would overwrite the input {hit}; choose another --out")
    return jobs


def _checkpoint_path(name: str) -> Path | None:
    """Where ``--checkpoint`` is (a name is found on the search path), to protect it from outputs."""
    from vp3d_engine.checkpoints import resolve_checkpoint

    try:
        return resolve_checkpoint(name)
    except Vp3dError:
        return None  # reported when the lifter is loaded


def _convert(job: Job, args: argparse.Namespace, options: ConvertOptions, models: Models) -> str:
    """Run one job through the library's :func:`~vp3d_engine.convert.convert`; the line to print."""
    from tqdm import tqdm

    from vp3d_engine.convert import convert

    if job.error is not None:
        raise job.error
    if job.kind != "keypoints" or os.path.lexists(job.source):  # with --keypoints the video is optional
        check_input_path(job.source)
    check_output_folder(job.out_dir)
    for stale in remove_stale_temps(job.out_dir):
        log.info("removed %s, left by an interrupted run", stale)
    with tqdm(desc=job.source.name, total=100, disable=args.quiet or job.kind == "motion", leave=False,
              bar_format="{desc}: {n:.0f}% {bar} {elapsed}<{remaining}") as bar:
        def progress(stage: str, fraction: float) -> None:
            done = 95 * fraction if stage == "detect" else 100 if stage == "write" else 95
            bar.update(done - bar.n)
            if args.progress_lines:  # for programs that run vp3d-convert (the Blender add-on)
                print(f"vp3d-progress {stage} {fraction:.4f} {done / 100:.4f}", file=sys.stderr, flush=True)

        conv = convert(job.source, replace(options, formats=job.formats), job.stem, kind=job.kind,
                       keypoints=job.keypoints, models=models, progress=progress)
    return conversion_line(str(job.source), conv, conv.files)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 1e7:
        raise argparse.ArgumentTypeError(f"must be from 0 to 10,000,000 seconds, not {text}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("give a share from 0 (the lifter alone) to 1 (MediaPipe's body, turned as "
                                         f"the lifted one), not {text}")
    return value


def _degrees(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of degrees") from None
        if not low <= value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g} degrees, not {text}")
        return value
    return parse


def smoothing_spec(text: str) -> str:
    """argparse type of ``--smooth``: the spec, checked and written out in full."""
    from converters.smoothing import parse_smooth

    if text.strip() == "auto":
        return "auto"
    try:
        return str(parse_smooth(text))
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _image_size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and 0 < int(w) <= 100_000 and 0 < int(h) <= 100_000):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in pixels (e.g. 1920x1080)")
    return int(w), int(h)


def _frame_rate(text: str) -> float:
    from converters.types import MAX_FPS, MIN_FPS

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of frames per second") from None
    if not MIN_FPS <= value <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"must be from {MIN_FPS:g} to {MAX_FPS:g} frames per second, not {value:g}")
    return value


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, not {value}")
        return value
    return parse


def _scheduler_address(text: str) -> str:
    """argparse type of ``--scheduler``: a Dask address, ``[tcp://]HOST:PORT`` (tls:// too)."""
    import re

    m = re.fullmatch(r"(?:(tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})", text.strip())
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Dask scheduler address: give tcp://HOST:PORT "
                                         "(e.g. tcp://10.0.0.5:8786, as `dask scheduler` prints it)")
    return text.strip() if m.group(1) else f"tcp://{text.strip()}"


def build_parser() -> argparse.ArgumentParser:
    from converters.rigs import PRESETS
    from vp3d_engine.detectors.registry import detector_names
    from vp3d_engine.lifters.registry import lifter_names

    p = argparse.ArgumentParser(prog="vp3d-convert", description="Video of a person to 3D joints.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("inputs", nargs="*",
                   help="video files, folders of videos, 2D keypoint files (as for --keypoints), 3D joints "
                        "(vp3d-convert .npz results, (T,17,3) arrays in .npy/.npz, motion capture .bvh); may be left "
                        "out with --keypoints")
    p.add_argument("--out", help="output folder (default: next to each video)")
    p.add_argument("--npz", action="store_true", help="write NAME.npz (the default when no format is given)")
    p.add_argument("--json", action="store_true", help="write NAME.json")
    p.add_argument("--motion", action="store_true",
                   help="write NAME.motion.npz: the animation as vp3d's Motion file (read by the Blender add-on and "
                        "the web page; see docs/FORMATS.md), also from 3D inputs")
    p.add_argument("--bvh", action="store_true",
                   help="write NAME.bvh: Y up, centimetres, joint rotations on the --rig (also from a result .npz)")
    p.add_argument("--glb", action="store_true", help="write NAME.glb: a glTF 2.0 skeleton with its animation")
    p.add_argument("--fbx", action="store_true",
                   help="write NAME.fbx with Blender's exporter (needs the blender extra: pip install 'vp3d[blender]')")
    p.add_argument("--render", action="store_true",
                   help="write NAME_preview.mp4: the video with its 2D keypoints beside the 3D skeleton on a ground "
                        "grid (needs the video)")
    p.add_argument("--render-azimuth", type=_degrees(-360, 360), default=30.0,
                   help="3D view: degrees around the subject")
    p.add_argument("--render-elevation", type=_degrees(-80, 80), default=15.0, help="3D view: degrees above the floor")
    p.add_argument("--render-trail", action="store_true", help="3D view: draw the root's path on the floor")
    p.add_argument("--rig", default="h36m", choices=list(PRESETS),
                   help="skeleton of the animation files: h36m (17 joints), mixamo (mixamorig: names) or ue "
                        "(Unreal mannequin names); default h36m")
    p.add_argument("--bvh-units", default="cm", choices=["cm", "m"], help="units of BVH and FBX files")
    p.add_argument("--smooth", type=smoothing_spec, default="auto", metavar="FILTER[:K=V,...]",
                   help="smooth the 3D joints before solving the animation: auto (default: oneeuro on joints lifted "
                        "from video, chosen by measurement; none on motion capture), none, oneeuro (mincutoff, "
                        "beta, dcutoff), savgol (window seconds, order), butter (cutoff Hz, order); e.g. "
                        "oneeuro:mincutoff=3,beta=1 (defaults are for metres)")
    p.add_argument("--root-motion", default="on", choices=["on", "in-place", "off"],
                   help="on (default): the root travels as in the video; in-place: it keeps its height (jumps, "
                        "crouches) but not its travel over the floor; off: it stays where it starts")
    p.add_argument("--feet", default="lock", choices=["lock", "off"],
                   help="lock (default): a foot on the floor stays where it was put down, and no foot goes through "
                        "the floor (leg IK and the root, blended in and out); off: the feet as lifted")
    p.add_argument("--trajectory", default="image", choices=["image", "model"],
                   help="image (default): the root's depth steadied and its travel matched to the 2D of the pelvis; "
                        "model: the trajectory model's output as it is")
    p.add_argument("--label-swaps", default="fix", choices=["fix", "keep"],
                   help="fix (default): where the detector labels the whole body mirrored for a while (left for "
                        "right), seen as the lifted body snapping half a turn round while the 2D points trade "
                        "sides, relabel those frames; keep: the detector's labels as they are")
    p.add_argument("--mediapipe-3d", type=_share, default=0.5, metavar="SHARE",
                   help="share of MediaPipe's own 3D averaged into the lifted pose, frame by frame, where MediaPipe "
                        "detected the video, or from a vp3d result file, which keeps it (default 0.5: closer to a "
                        "4-camera reference than either alone; 0: the lifter alone, as from other keypoint files)")
    p.add_argument("--detector", default="mediapipe", choices=detector_names())
    p.add_argument("--keypoints", help="2D keypoints from another tool (file or OpenPose folder): skip detection; "
                                       "the video is optional (it gives the image size and frame rate if the file "
                                       "does not)")
    p.add_argument("--image-size", type=_image_size, metavar="WxH",
                   help="image size of a 2D file that does not record it (pixels, e.g. 1920x1080)")
    p.add_argument("--fps", type=_frame_rate,
                   help="frame rate of a 2D or 3D file that does not record it (default 30)")
    p.add_argument("--lifter", default="videopose3d", choices=lifter_names())
    p.add_argument("--checkpoint", default="default", help="checkpoint name, folder, or original VideoPose3D .bin")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--start", type=_seconds, help="seconds")
    p.add_argument("--end", type=_seconds, help="seconds")
    p.add_argument("--stride", type=_at_least(1), default=1, help="use every N-th frame")
    p.add_argument("--person", type=_at_least(0), default=0,
                   help="0: the main subject; 1, 2...: the others (MediaPipe then runs once more per person: "
                        "--person 1 takes twice as long)")
    p.add_argument("--no-flip", action="store_true", help="no test-time flip augmentation (faster)")
    p.add_argument("--workers", type=_at_least(1),
                   help="detection processes for videos longer than 10 s (default: one per core; 1: none)")
    p.add_argument("--resample", default="checkpoint", choices=["checkpoint", "none"],
                   help="checkpoint (default): lift at the frame rate the checkpoint was trained at, resampling "
                        "the clip; none: lift the frames as they come, as the original VideoPose3D code does")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786", type=_scheduler_address,
                   help="convert on a Dask cluster (pip install 'vp3d[cluster]'; workers started with `dask worker "
                        "tcp://HOST:8786` where vp3d is installed): each input is sent to a worker and its files come "
                        "back here, written as a local run writes them")
    p.add_argument("--shared-fs", action="store_true",
                   help="with --scheduler: the workers read the inputs and write the outputs at these paths "
                        "themselves (a disk every worker mounts at the same place)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--progress-lines", action="store_true",
                   help="print progress for programs on stderr: lines 'vp3d-progress STAGE STAGE_FRACTION "
                        "OVERALL_FRACTION'")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with interrupts_raise():
            return _run(args)
    except Interrupted as stop:
        print(f"vp3d-convert: {stop}; the files of the input being converted were not written", file=sys.stderr)
        return stop.exit_code


def _run(args: argparse.Namespace) -> int:
    from vp3d_engine.outputs import check_motion_formats

    asked = [f for f in ("npz", "json", "motion", "bvh", "glb", "fbx", "render") if getattr(args, f)]
    opts = PipelineOptions(detector=args.detector, lifter=args.lifter, checkpoint=args.checkpoint, device=args.device,
                           start=args.start, end=args.end, stride=args.stride, person=args.person,
                           image_size=args.image_size, fps=args.fps, flip=False if args.no_flip else None,
                           resample=args.resample, workers=args.workers, trajectory=args.trajectory,
                           label_swaps=args.label_swaps, mediapipe_3d=args.mediapipe_3d)
    options = ConvertOptions(pipeline=opts, rig=args.rig, units=args.bvh_units, root_motion=args.root_motion,
                             smoothing=str(args.smooth), feet=args.feet,
                             render=RenderOptions(azimuth=args.render_azimuth, elevation=args.render_elevation,
                                                  trail=args.render_trail))
    models = Models()  # loaded by the first input that needs them, then reused
    try:
        if args.shared_fs and not args.scheduler:
            raise ConfigurationError("--shared-fs goes with --scheduler (a Dask cluster)")
        check_motion_formats(asked)
        if args.out:
            check_output_folder(args.out)
        jobs = _plan(args, asked)
    except Vp3dError as exc:
        print(f"vp3d-convert: error: {exc}", file=sys.stderr)
        return 2
    for stale in remove_stale_temps():  # temporary folders of killed runs
        log.info("removed %s, left by an interrupted run", stale)
    if args.scheduler:
        from vp3d_engine.cluster import run_batch

        try:
            return run_batch(jobs, args, options)
        except Vp3dError as exc:
            print(f"vp3d-convert: error: {exc}", file=sys.stderr)
            return 2
    failures = bugs = 0
    try:
        for job in jobs:
            check_interrupted()
            try:
                print(_convert(job, args, options, models))
            except (Vp3dError, OSError) as exc:
                failures += 1
                if args.verbose:
                    log.exception("conversion failed")
                report_failure(job.source, exc)
            except Exception:  # a bug in vp3d: report it, keep converting the others
                bugs += 1
                traceback.print_exc()
                print(f"vp3d-convert: internal error while converting {job.source} (a bug in vp3d; please report "
                      "the traceback above)", file=sys.stderr)
    finally:
        models.close()
    check_interrupted()
    if len(jobs) > 1:
        print(f"{len(jobs) - failures - bugs} converted, {failures + bugs} failed")
    return 1 if bugs else 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
