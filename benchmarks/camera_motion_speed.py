"""Speed of the camera-rotation estimate (:mod:`vp3d_engine.camera_motion`) on a 720p clip, frames
per second, median over repeats:

- fed decoded frames (what the pipeline would do: it decodes every frame for detection anyway),
  tracking and the final solve (focal length, rotations) timed apart, every frame and every other;
  a fixed box over the person (the default clip's: pass a clip with its person in the same place);
- from the file (``estimate_camera_motion``: decoding with ``iter_frames`` on a thread, RGB);
- decoding alone (RGB, as ``iter_frames`` gives it; and the luma plane alone, which the estimate
  needs: what a grey option of ``iter_frames`` would cost).

Target: at most 15% of the pipeline's time. The pipeline converts 720p at 42 frames/s in one
process and 74 with its detection workers (``benchmarks/results/pipeline_speed.txt``), so the
estimate should run at 280 to 490 frames/s, or on every k-th frame.

    python benchmarks/camera_motion_speed.py [--video ../shared/data/videos/taiji_indoor_720p.mp4]
        [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from vp3d_engine.camera_motion import CameraTracker, estimate_camera_motion
from vp3d_engine.video import iter_frames

PIPELINE_FPS = (42.0, 74.0)  # one process, default workers


def _fed(frames: list[tuple[float, np.ndarray]], stride: int, person: np.ndarray) -> tuple[float, float, float, str]:
    """Frames per second of video: tracking alone, with the final solve, and the latter per second
    of CPU time (all threads; steadier than the clock on a busy machine); the kind found."""
    tracker = CameraTracker()
    start, cpu = time.perf_counter(), time.process_time()
    for t, image in frames[::stride]:
        tracker.add(image, t, person)
    tracked = time.perf_counter()
    motion = tracker.finish(times=np.array([t for t, _ in frames]))
    done, cpu = time.perf_counter(), time.process_time() - cpu
    return len(frames) / (tracked - start), len(frames) / (done - start), len(frames) / cpu, motion.kind


def _luma_rate(video: Path, seconds: float) -> float:
    """Decoding to the luma plane alone (no RGB conversion), frames per second."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start, count = time.perf_counter(), 0
        for frame in container.decode(stream):
            plane = frame.planes[0]
            np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:frame.height, :frame.width].copy()
            count += 1
            if frame.time is not None and frame.time >= seconds:
                break
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "taiji_indoor_720p.mp4"
    parser.add_argument("--video", default=str(default))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    video = Path(args.video)

    start = time.perf_counter()
    frames = [(f.time, f.image) for f in iter_frames(video, end=args.seconds)]
    rgb_rate = len(frames) / (time.perf_counter() - start)
    h, w = frames[0][1].shape[:2]
    person = np.array([[0.25 * w, 0.0, 0.8 * w, h]])  # where the clip's person is (none given: "moving")
    print(f"{video.name}: {len(frames)} frames of {w}x{h}; decoding to RGB {rgb_rate:.0f} frames/s, "
          f"to luma only {_luma_rate(video, args.seconds):.0f} frames/s")
    for stride in (1, 2):
        runs = [_fed(frames, stride, person) for _ in range(args.repeats)]
        tracking, whole, cpu = (statistics.median(r[i] for r in runs) for i in range(3))
        shares = ", ".join(f"{100 * fps / whole:.0f}% of a {fps:.0f} frames/s pipeline" for fps in PIPELINE_FPS)
        print(f"fed decoded frames, every {'frame' if stride == 1 else f'{stride}nd frame'}: tracking "
              f"{tracking:.0f} frames/s, with the solve {whole:.0f} frames/s ({shares}); {cpu:.0f} frames per "
              f"CPU-second; camera {runs[0][3]}")
        rates = []
        for _ in range(args.repeats):
            motion = estimate_camera_motion(video, end=args.seconds, stride=stride, people=lambda _: person)
            rates.append(motion.figures["frames_per_s_with_decoding"])
        print(f"  from the file (decoding included), stride {stride}: {statistics.median(rates):.0f} frames/s")


if __name__ == "__main__":
    main()
