"""``vp3d-convert``: video(s) to 3D joints files.

    vp3d-convert clip.mp4                      # writes clip.npz next to the video
    vp3d-convert videos/ --out results --json  # every video in a folder
    vp3d-convert clip.mp4 --keypoints clip_openpose/   # 2D from another tool, no detection
    vp3d-convert clip.mp4 --bvh --glb --fbx --rig mixamo  # animation files on a Mixamo-named rig
    vp3d-convert clip.npz --fbx --rig ue       # re-export an earlier result, no detection
    vp3d-convert take.bvh --out ue --fbx --rig ue  # retarget motion capture onto a preset

Exit status: 0 when every input converted, 2 when any failed (each failure is one line on stderr
saying what to do; the other inputs still run), 1 for an unexpected error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from converters.errors import Vp3dError

__all__ = ["main"]

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
                  ".ts", ".mts"}


def _inputs(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise SystemExit(f"vp3d-convert: error: no videos in folder {p} "
                                 f"(looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
            out.extend(found)
        else:
            out.append(p)
    return out


def _reexport(path: Path, out_dir: Path, formats: list[str], rig: str, units: str) -> list[Path]:
    """Write animation formats from existing 3D joints, a result .npz or a mocap .bvh (no detection,
    no lifting)."""
    from converters.errors import ConfigurationError
    from vp3d_engine.outputs import MOTION_FORMATS, load_pose_file, write_motion_files

    others = [f for f in formats if f not in MOTION_FORMATS]
    if others:
        raise ConfigurationError(f"{path} is already 3D; from it only --bvh, --glb and --fbx can be written "
                                 f"(not --{' --'.join(others)})")
    if not formats:
        raise ConfigurationError(f"{path} is already 3D: say which files to write from it (--bvh, --glb, --fbx)")
    for fmt in formats:
        target = out_dir / f"{path.stem}.{fmt}"
        # Also where names differ only in case (the same file on macOS and Windows).
        if (target.exists() and target.samefile(path)) or str(target).lower() == str(path).lower():
            raise ConfigurationError(f"writing {target.name} into {out_dir} would overwrite the input; choose --out")
    return write_motion_files(load_pose_file(path), out_dir / path.stem, formats, rig, units)


def build_parser() -> argparse.ArgumentParser:
    from converters.rigs import PRESETS
    from vp3d_engine.detectors.registry import detector_names
    from vp3d_engine.lifters.registry import lifter_names

    p = argparse.ArgumentParser(prog="vp3d-convert", description="Video of a person to 3D joints.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("inputs", nargs="+",
                   help="video files, folders of videos, vp3d-convert .npz results, or motion capture .bvh files")
    p.add_argument("--out", help="output folder (default: next to each video)")
    p.add_argument("--npz", action="store_true", help="write NAME.npz (the default when no format is given)")
    p.add_argument("--json", action="store_true", help="write NAME.json")
    p.add_argument("--bvh", action="store_true",
                   help="write NAME.bvh: Y up, centimetres, joint rotations on the --rig (also from a result .npz)")
    p.add_argument("--glb", action="store_true", help="write NAME.glb: a glTF 2.0 skeleton with its animation")
    p.add_argument("--fbx", action="store_true",
                   help="write NAME.fbx with Blender's exporter (needs the blender extra: pip install 'vp3d[blender]')")
    p.add_argument("--rig", default="h36m", choices=list(PRESETS),
                   help="skeleton of the animation files: h36m (17 joints), mixamo (mixamorig: names) or ue "
                        "(Unreal mannequin names); default h36m")
    p.add_argument("--bvh-units", default="cm", choices=["cm", "m"], help="units of BVH and FBX files")
    p.add_argument("--detector", default="mediapipe", choices=detector_names())
    p.add_argument("--keypoints", help="2D keypoints from another tool (file or OpenPose folder): skip detection")
    p.add_argument("--lifter", default="videopose3d", choices=lifter_names())
    p.add_argument("--checkpoint", default="default", help="checkpoint name, folder, or original VideoPose3D .bin")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--start", type=float, help="seconds")
    p.add_argument("--end", type=float, help="seconds")
    p.add_argument("--stride", type=int, default=1, help="use every N-th frame")
    p.add_argument("--person", type=int, default=0, help="0: the main subject; 1, 2...: the others by size")
    p.add_argument("--no-flip", action="store_true", help="no test-time flip augmentation (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from tqdm import tqdm

    from vp3d_engine.outputs import check_motion_formats, write_json, write_motion_files, write_npz
    from vp3d_engine.pipeline import PipelineOptions, run_pipeline

    if args.keypoints and len(args.inputs) > 1:
        print("vp3d-convert: error: --keypoints goes with one video", file=sys.stderr)
        return 2
    opts = PipelineOptions(detector=args.detector, lifter=args.lifter, checkpoint=args.checkpoint, device=args.device,
                           start=args.start, end=args.end, stride=args.stride, person=args.person,
                           keypoints=Path(args.keypoints) if args.keypoints else None,
                           flip=False if args.no_flip else None)
    asked = [f for f in ("npz", "json", "bvh", "glb", "fbx") if getattr(args, f)]
    formats = asked or ["npz"]
    try:
        check_motion_formats(formats)
    except Vp3dError as exc:
        print(f"vp3d-convert: error: {exc}", file=sys.stderr)
        return 2
    inputs = _inputs(args.inputs)
    targets: dict[Path, Path] = {}
    for video in inputs:
        key = (Path(args.out) if args.out else video.parent) / video.stem
        if key in targets:
            print(f"vp3d-convert: error: {targets[key]} and {video} would write the same {key}.*; "
                  "rename one or convert them into different --out folders", file=sys.stderr)
            return 2
        targets[key] = video
    failures = 0
    for video in inputs:
        out_dir = Path(args.out) if args.out else video.parent
        bar = None
        if video.suffix.lower() in (".npz", ".bvh") and not args.keypoints:
            try:
                written = _reexport(video, out_dir, asked, args.rig, args.bvh_units)
                print(f"{video}: -> {', '.join(map(str, written))}")
            except Vp3dError as exc:
                failures += 1
                print(f"vp3d-convert: error: {exc}" if str(video) in str(exc) else
                      f"vp3d-convert: error: {video}: {exc}", file=sys.stderr)
            continue
        try:
            total = None
            if not args.keypoints:
                from vp3d_engine.video import probe_video

                duration = probe_video(video).duration_s or 0.0
                total = round(min(args.end or duration, duration) - (args.start or 0), 1)
            bar = tqdm(desc=video.name, total=total, unit="s", disable=args.quiet, leave=False,
                       bar_format="{desc}: {n:.1f}/{total_fmt} s {bar} {elapsed}<{remaining}")

            def progress(t: float, bar: tqdm = bar) -> None:
                bar.update(t - (args.start or 0) - bar.n)

            result = run_pipeline(video, opts, progress)
            written = []
            if "npz" in formats:
                written.append(write_npz(result, out_dir / f"{video.stem}.npz"))
            if "json" in formats:
                written.append(write_json(result, out_dir / f"{video.stem}.json"))
            written += write_motion_files(result.pose, out_dir / video.stem, formats, args.rig, args.bvh_units)
            bar.close()
            filled = result.track.joints_filled
            damage = ""
            if result.decode is not None and result.decode.damaged:
                damage = (f" (video damaged: {result.decode.damaged_packets} packets could not be decoded; "
                          "the frames after them are missing)")
            print(f"{video}: {result.keypoints.num_frames} frames, person in {result.track.frames_present:.0%}, "
                  f"{filled:.1%} of joints filled{damage} -> {', '.join(map(str, written))}")
        except Vp3dError as exc:
            if bar is not None:
                bar.close()
            failures += 1
            if args.verbose:
                logging.exception("conversion failed")
            print(f"vp3d-convert: error: {video}: {exc}" if str(video) not in str(exc) else
                  f"vp3d-convert: error: {exc}", file=sys.stderr)
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
