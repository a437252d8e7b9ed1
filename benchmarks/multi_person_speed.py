"""Detection speed of the multi-person backend (``blazepose-multi``) against the one-person default
(``mediapipe``), frames per second in one process, on the same 720p clip with one and with three
people in view.

The three-person clip is made here from the one-person clip: three 427-pixel-wide strips around its
dancer, side by side (1280x720, the same person three times, each as tall as in the original).
For three people the default needs one painted-out pass per person (``max_people=3``, what
``--person 2`` runs); it is timed that way too. Decoding is done once, before the clock starts.

    python benchmarks/multi_person_speed.py [--video ../shared/data/videos/taiji_indoor_720p.mp4]
        [--seconds 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

from vp3d_engine.detectors.registry import create_detector
from vp3d_engine.video import iter_frames


def _three(frame: np.ndarray, centre: int) -> np.ndarray:
    """The 1280x720 frame with three copies of the 427-pixel strip around ``centre``."""
    left = int(np.clip(centre - 213, 0, frame.shape[1] - 427))
    strip = frame[:, left:left + 427]
    return np.ascontiguousarray(np.concatenate([strip, strip, strip], axis=1)[:, :1280])


def _rate(name: str, frames: list[np.ndarray], repeats: int, **options: object) -> tuple[float, float]:
    """Median frames per second over ``repeats`` runs (a fresh detector each), and people per frame."""
    rates, found = [], 0.0
    for _ in range(repeats):
        detector = create_detector(name, device="cpu", **options)
        try:
            t0 = time.perf_counter()
            people = detector.detect(frames)
            rates.append(len(frames) / (time.perf_counter() - t0))
            found = float(np.mean([len(p) for p in people]))
        finally:
            detector.close()
    return statistics.median(rates), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "taiji_indoor_720p.mp4"
    parser.add_argument("--video", default=str(default))
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    one = [f.image for f in iter_frames(args.video, end=args.seconds)]
    detector = create_detector("mediapipe", device="cpu")
    centre = int(np.median([p[0, :, 0].mean() for p in detector.detect(one[:30]) if len(p)]))
    detector.close()
    three = [_three(f, centre) for f in one]
    print(f"{Path(args.video).name}: {len(one)} frames of {one[0].shape[1]}x{one[0].shape[0]}; medians of "
          f"{args.repeats} runs, frames/s in one process")
    rows = [("one person", "mediapipe (default)", *_rate("mediapipe", one, args.repeats)),
            ("one person", "blazepose-multi", *_rate("blazepose-multi", one, args.repeats)),
            ("three people", "mediapipe, person 0 only", *_rate("mediapipe", three, args.repeats)),
            ("three people", "mediapipe, max_people=3", *_rate("mediapipe", three, args.repeats, max_people=3)),
            ("three people", "blazepose-multi", *_rate("blazepose-multi", three, args.repeats))]
    base = {scene: rate for scene, name, rate, _ in rows if name.startswith("mediapipe") and "3" not in name}
    print(f"{'scene':14s} {'detector':26s} {'frames/s':>9s} {'people/frame':>13s} {'vs first row':>13s}")
    for scene, name, rate, found in rows:
        print(f"{scene:14s} {name:26s} {rate:9.1f} {found:13.2f} {rate / base[scene]:12.2f}x")


if __name__ == "__main__":
    main()
