"""End-to-end `vp3d-convert` throughput next to detector-only throughput, per video, one run.

Detector-only: MediaPipe on frames already decoded into memory (the floor the pipeline cannot
beat). End-to-end: `run_pipeline` (decoding on its own thread, detection, tracking, lifting).
Prints frames/s for both, their ratio (target >= 0.90), and medians over --repeats.

    python benchmarks/pipeline_speed.py [--videos ../shared/data/videos] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

from vp3d_engine.detectors.registry import create_detector
from vp3d_engine.pipeline import PipelineOptions, run_pipeline
from vp3d_engine.video import iter_frames


def detector_only(path: Path) -> tuple[int, float]:
    images = [f.image for f in iter_frames(path)]
    detector = create_detector("mediapipe")
    t0 = time.perf_counter()
    for image in images:
        detector.detect([image])
    elapsed = time.perf_counter() - t0
    detector.close()
    return len(images), elapsed


def end_to_end(path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    result = run_pipeline(path, PipelineOptions())
    return result.keypoints.num_frames, time.perf_counter() - t0 - result.timings["load_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    run_pipeline(sorted(Path(args.videos).glob("*.mp4"))[0], PipelineOptions(end=2.0))  # warm-up: imports, model
    print(f"{'video':28s}{'frames':>8s}{'detector fps':>14s}{'pipeline fps':>14s}{'ratio':>8s}")
    ratios = []
    for path in sorted(Path(args.videos).glob("*.mp4")):
        det, e2e = [], []
        for _ in range(args.repeats):
            n, t = detector_only(path)
            det.append(n / t)
            n, t = end_to_end(path)
            e2e.append(n / t)
        d, e = statistics.median(det), statistics.median(e2e)
        ratios.append(e / d)
        print(f"{path.name:28s}{n:8d}{d:14.1f}{e:14.1f}{e / d:8.2f}")
    print(f"median ratio {statistics.median(ratios):.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
