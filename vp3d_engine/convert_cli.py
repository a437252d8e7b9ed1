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
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from converters.errors import ConfigurationError, Vp3dError
from converters.fileio import PathSet, check_input_path, check_output_folder, printable, remove_stale_temps
from converters.interrupts import Interrupted, check_interrupted, interrupts_raise
from vp3d_engine.convert import ConvertOptions, Models
from vp3d_engine.jobs import Job, conversion_line, report_failure
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
    return Job(video or path, out_dir, name, asked or ["npz"], "keypoints", keypoints=path,
               everyone=args.person == "all")


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
            jobs.append(Job(source, out_dir, name, asked if kind == "motion" else (asked or ["npz"]), kind,
                            everyone=args.person == "all" and kind != "motion"))
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


def _scheduler_address(text: str) -> str:
    """argparse type of ``--scheduler``: a Dask address, ``[tcp://]HOST:PORT`` (tls:// too)."""
    import re

    m = re.fullmatch(r"(?:(tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})", text.strip())
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Dask scheduler address: give tls://HOST:PORT or "
                                         "tcp://HOST:PORT (e.g. tls://10.0.0.5:8786, as `dask scheduler` prints it)")
    return text.strip() if m.group(1) else f"tcp://{text.strip()}"


def build_parser() -> argparse.ArgumentParser:
    """The run's own flags here; the conversion's options from their one definition
    (:mod:`converters.options`, through :func:`vp3d_engine.options.add_arguments`)."""
    from vp3d_engine.options import add_arguments

    p = argparse.ArgumentParser(prog="vp3d-convert", description="Video of a person to 3D joints.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("inputs", nargs="*",
                   help="video files, folders of videos, 2D keypoint files (as for --keypoints), 3D joints "
                        "(vp3d-convert .npz results, (T,17,3) arrays in .npy/.npz, motion capture .bvh); may be left "
                        "out with --keypoints")
    p.add_argument("--out", help="output folder (default: next to each video)")
    p.add_argument("--keypoints", help="2D keypoints from another tool (file or OpenPose folder): skip detection; "
                                       "the video is optional (it gives the image size and frame rate if the file "
                                       "does not)")
    add_arguments(p.add_argument_group("conversion options (the same in vp3d serve and the Blender add-on)"))
    p.add_argument("--scheduler", metavar="tls://HOST:8786", type=_scheduler_address,
                   help="convert on a Dask cluster (pip install 'vp3d[cluster]'; TLS certificates from "
                        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ..._CLIENT__CERT, ..._CLIENT__KEY: see the README): "
                        "each input is sent to a worker and its files come back here, checked, and written as a "
                        "local run writes them")
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
    from vp3d_engine.options import build_options, values_from_args
    from vp3d_engine.outputs import check_motion_formats

    values = values_from_args(args)
    asked = list(values.pop("formats"))
    models = Models()  # loaded by the first input that needs them, then reused
    try:
        options = build_options(values, local=not args.scheduler)
        if args.shared_fs and not args.scheduler:
            raise ConfigurationError("--shared-fs goes with --scheduler (a Dask cluster)")
        check_motion_formats(asked)
        if args.out:
            check_output_folder(args.out)
        jobs = _plan(args, asked)
    except Vp3dError as exc:
        print(f"vp3d-convert: error: {printable(exc)}", file=sys.stderr)
        return 2
    for stale in remove_stale_temps():  # temporary folders of killed runs
        log.info("removed %s, left by an interrupted run", stale)
    if args.scheduler:
        from vp3d_engine.cluster import run_batch

        try:
            return run_batch(jobs, args, options)
        except Vp3dError as exc:
            print(f"vp3d-convert: error: {printable(exc)}", file=sys.stderr)
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
                print(f"vp3d-convert: internal error while converting {printable(job.source)} (a bug in vp3d; please "
                      "report the traceback above)", file=sys.stderr)
    finally:
        models.close()
    check_interrupted()
    if len(jobs) > 1:
        print(f"{len(jobs) - failures - bugs} converted, {failures + bugs} failed")
    return 1 if bugs else 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
