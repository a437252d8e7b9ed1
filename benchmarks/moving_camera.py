"""A turning camera, side by side in one run: what taking its turns out of the motion gains, and
what estimating them costs.

1. Accuracy. The first 4 s of the tai chi clip (``videos/taiji_indoor_720p.mp4``), made still
   (``tests/camera_footage.stabilize``), seen by a 800x450 camera of focal 640 px that stands still
   (the tripod version) or turns along a known path (``TurnedCamera``: slow pan, fast pan with tilt
   and roll, a hand's shake), each converted with ``--camera static`` and ``--camera auto``. For
   each: the root's path over the floor against the tripod version's (``--camera auto``; RMS in cm)
   and its travel over the tripod's (1.0: as far as the person went), the camera found and its
   largest error against the known path (degrees). As ``tests/engine/test_camera_motion.py``
   (``converted``) does it.
2. Cost. ``run_pipeline`` on the whole 720p clip (412 frames) with ``--camera static`` and ``auto``,
   with the default workers (detection in worker processes, the camera in a pass of its own) and
   with one (the camera fed the frames detection decodes): frames per second of video, the lifter's
   loading left out, medians of ``--repeats`` runs taken in turn, and their ratio; and frames per
   CPU-second (steadier than the clock on a busy machine; the lifter's loading counted in).

    python benchmarks/moving_camera.py [--repeats 3] [--skip-cost] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test footage: camera_footage

from camera_footage import TurnedCamera, fast_pan, handheld, slow_pan, stabilize, write_clip  # noqa: E402

from vp3d_engine.pipeline import PipelineOptions, run_pipeline  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
FPS, SECONDS = 24, 4.0
SIZE, FOCAL = (800, 450), 640.0
PATHS = {"tripod": lambda times: np.repeat(np.eye(3)[None], len(times), axis=0), "slow pan": slow_pan,
         "fast pan, tilt, roll": fast_pan, "handheld shake": handheld}
MODES = ("static", "auto")


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (np.einsum("tji,tji->t", a, b) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def root_error_cm(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """RMS distance over the floor between root paths ``(T,3)`` (cm), and the travel of ``a`` over
    that of ``b``."""
    n = min(len(a), len(b))
    gap = a[:n, [0, 2]] - b[:n, [0, 2]]

    def travel(p: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(p[:n, [0, 2]], axis=0), axis=1).sum())

    return 100 * float(np.sqrt((gap**2).sum(axis=1).mean())), travel(a) / max(travel(b), 1e-9)


def make_clips(video: Path, folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Each version of the clip and its camera's true turns ``(T,3,3)``."""
    from vp3d_engine.camera_motion import boxes_of_people
    from vp3d_engine.detection import detect_video
    from vp3d_engine.video import DecodeReport, iter_frames, probe_video

    frames = [f.image for f in iter_frames(video, end=SECONDS)]
    dets, _ = detect_video(video, PipelineOptions(workers=1, end=SECONDS), probe_video(video), DecodeReport())
    boxes = [boxes_of_people(p) for p in dets.people]
    still, _, residual = stabilize(frames, boxes)
    print(f"source: {video.name}, first {SECONDS:g} s ({len(still)} frames), made still (residual "
          f"{residual:.2f} px); seen by a {SIZE[0]}x{SIZE[1]} camera of focal {FOCAL:g} px at {FPS} fps")
    camera = TurnedCamera((1280, 720), FOCAL, SIZE, FOCAL)
    times = np.arange(len(still)) / FPS
    out = {}
    for name, path in PATHS.items():
        truth = path(times)
        assert all(camera.covered(r, margin=12) for r in truth), name
        clip = folder / f"{name.split(',')[0].replace(' ', '_')}.mp4"
        out[name] = (write_clip(clip, [camera.frame(image, r) for image, r in zip(still, truth, strict=True)], FPS),
                     truth)
    return out


def accuracy(video: Path) -> None:
    from converters.motion_file import load_motion_file
    from vp3d_engine.convert import convert
    from vp3d_engine.options import build_options

    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(video, Path(tmp))
        done: dict[tuple[str, str], Any] = {}
        for name, (clip, _) in clips.items():
            for mode in MODES:
                stem = Path(tmp) / f"{clip.stem}_{mode}"
                conv = convert(clip, build_options({"camera": mode, "formats": ("motion",)}), stem)
                done[(name, mode)] = (conv, load_motion_file(stem.with_name(stem.name + ".motion.npz")))
    reference = done[("tripod", "auto")][1].motion.root_translation
    print("\nroot path over the floor against the tripod version's (--camera auto): RMS cm, travel ratio")
    print(f"{'clip':22s} | {'static: cm':>10s} {'travel':>6s} | {'auto: cm':>8s} {'travel':>6s} | camera found "
          "(auto), its largest error")
    for name, (_, truth) in clips.items():
        cells = []
        for mode in MODES:
            error, travel = root_error_cm(done[(name, mode)][1].motion.root_translation, reference)
            cells.append(f"{error:10.1f} {travel:6.2f}")
        conv = done[(name, "auto")][0]
        camera = conv.result.camera
        kp = conv.result.keypoints
        worst = angle_deg(camera.at(kp.timestamps), truth[: kp.num_frames]).max() if camera is not None else np.nan
        about = done[(name, "auto")][1].motion.meta.get("camera", {})
        found = (f"{camera.kind}, applied {about.get('applied')}, focal {camera.focal_px:.0f} px, {worst:.2f} deg"
                 if camera is not None else "none")
        print(f"{name:22s} | {cells[0]} | {cells[1]:>15s} | {found}")


def cost(video: Path, repeats: int) -> None:
    from vp3d_engine.video import probe_video

    info = probe_video(video)
    run_pipeline(video, PipelineOptions(end=2.0, workers=1))  # warm-up: caches, the lifter's first load
    print(f"\ncost of the estimate: run_pipeline on {video.name} ({info.width}x{info.height}, {info.frames} frames), "
          f"frames/s without the lifter's loading, median of {repeats}")
    for workers, label in ((None, "default workers"), (1, "one worker")):
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        per_cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
        kinds = set()
        for _ in range(repeats):
            for mode in MODES:  # in turn, so that a busy moment weighs on both
                start, cpu = time.perf_counter(), _cpu_seconds()
                result = run_pipeline(video, PipelineOptions(workers=workers, camera=mode))
                elapsed = time.perf_counter() - start - result.timings["load_s"]
                rates[mode].append(result.keypoints.num_frames / elapsed)
                per_cpu[mode].append(result.keypoints.num_frames / (_cpu_seconds() - cpu))
                if result.camera is not None:
                    kinds.add(result.camera.kind)
        static, auto = (statistics.median(rates[m]) for m in MODES)
        static_cpu, auto_cpu = (statistics.median(per_cpu[m]) for m in MODES)
        print(f"{label:16s}: static {static:5.1f} frames/s, auto {auto:5.1f} frames/s: auto takes "
              f"{static / auto:.2f}x the time ({100 * (static / auto - 1):+.0f}%); camera found {sorted(kinds)}; runs "
              f"static {[round(r, 1) for r in rates['static']]}, auto {[round(r, 1) for r in rates['auto']]}")
        print(f"{'':16s}  per CPU-second (this process and its workers, lifter loading included): static "
              f"{static_cpu:5.1f}, auto {auto_cpu:5.1f} frames: {static_cpu / auto_cpu:.2f}x the CPU time")


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its children that have ended (the workers)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(SHARED / "videos" / "taiji_indoor_720p.mp4"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    video = Path(args.video)
    print(f"{os.cpu_count()} CPUs")
    if not args.skip_accuracy:
        accuracy(video)
    if not args.skip_cost:
        cost(video, args.repeats)


if __name__ == "__main__":
    main()
