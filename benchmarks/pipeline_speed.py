"""End-to-end `vp3d-convert` speed next to MediaPipe's own, side by side in one run.

1. Parallel detection (target: pipeline time <= 0.6 of the bare loop, 1.7x or better): the 69 s
   720p clip made by looping taiji_indoor_720p.mp4 four times (forward, backward, forward,
   backward, re-encoded: a plain loop jumps at each seam, which tracking rightly reads as a cut),
   timed as a bare single-process loop (decode a frame, detect it, next) and as `run_pipeline`
   with the default workers (one per core) and with one worker.
2. With --per-video: each shared video, MediaPipe on frames already decoded into memory (the floor
   a single process cannot beat) against `run_pipeline` with one worker (target ratio >= 0.90).

Medians over --repeats.

    python benchmarks/pipeline_speed.py [--repeats 2] [--per-video]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

import tempfile

from pipeline_memory import loop_clip

from vp3d_engine.detectors.registry import create_detector
from vp3d_engine.pipeline import PipelineOptions, run_pipeline
from vp3d_engine.video import iter_frames, probe_video

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def bare_loop(path: Path) -> tuple[int, float]:
    """Decode a frame, detect it, next: one process, no threads of ours."""
    t0 = time.perf_counter()
    detector = create_detector("mediapipe")
    n = 0
    for frame in iter_frames(path):
        detector.detect([frame.image])
        n += 1
    detector.close()
    return n, time.perf_counter() - t0


def pipeline(path: Path, workers: int | None) -> tuple[int, float]:
    t0 = time.perf_counter()
    result = run_pipeline(path, PipelineOptions(workers=workers))
    return result.keypoints.num_frames, time.perf_counter() - t0 - result.timings["load_s"]


def detector_only(path: Path) -> tuple[int, float]:
    images = [f.image for f in iter_frames(path)]
    detector = create_detector("mediapipe")
    t0 = time.perf_counter()
    for image in images:
        detector.detect([image])
    elapsed = time.perf_counter() - t0
    detector.close()
    return len(images), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default=str(SHARED / "videos"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--per-video", action="store_true")
    args = parser.parse_args()
    run_pipeline(sorted(Path(args.videos).glob("*.mp4"))[0], PipelineOptions(end=2.0, workers=1))  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "taiji_x4.mp4"
        source = Path(args.videos) / "taiji_indoor_720p.mp4"
        loop_clip(source, clip, 4 * probe_video(source).frames / probe_video(source).fps)
        bare, par, one = [], [], []
        for _ in range(args.repeats):
            n, t = bare_loop(clip)
            bare.append(t)
            n2, t2 = pipeline(clip, None)
            par.append(t2)
            n3, t3 = pipeline(clip, 1)
            one.append(t3)
            assert n == n2 == n3, (n, n2, n3)
        b, p, o = (statistics.median(x) for x in (bare, par, one))
        print(f"looped 720p clip, {n} frames: bare loop {b:.1f} s ({n / b:.1f} frames/s); pipeline, default "
              f"workers {p:.1f} s ({n / p:.1f} frames/s, {p / b:.2f} of the bare loop, {b / p:.2f}x); pipeline, one "
              f"worker {o:.1f} s ({o / b:.2f} of the bare loop)  [target <= 0.60]")
    if not args.per_video:
        return
    print(f"{'video':28s}{'frames':>8s}{'detector fps':>14s}{'pipeline fps':>14s}{'ratio':>8s}")
    ratios = []
    for path in sorted(Path(args.videos).glob("*.mp4")):
        det, e2e = [], []
        for _ in range(args.repeats):
            n, t = detector_only(path)
            det.append(n / t)
            n, t = pipeline(path, 1)
            e2e.append(n / t)
        d, e = statistics.median(det), statistics.median(e2e)
        ratios.append(e / d)
        print(f"{path.name:28s}{n:8d}{d:14.1f}{e:14.1f}{e / d:8.2f}")
    print(f"median ratio {statistics.median(ratios):.2f} (target >= 0.90)")

if __name__ == "__main__":
    main()
