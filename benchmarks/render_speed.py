"""Preview rendering speed at 720p (target: 60 frames/s or more on the 2-core CPU): the 17 s
taiji_indoor_720p.mp4 is converted once, then its preview (decode, draw the 2D keypoints and the 3D
skeleton on its grid, encode H.264) is rendered --repeats times; median frames/s.

    python benchmarks/render_speed.py [--video ../shared/data/videos/taiji_indoor_720p.mp4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

from converters.world import camera_to_world
from vp3d_engine.pipeline import PipelineOptions, run_pipeline
from vp3d_engine.render import RenderOptions, render_preview


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "taiji_indoor_720p.mp4"
    parser.add_argument("--video", default=str(default))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    video = Path(args.video)
    result = run_pipeline(video, PipelineOptions())
    kp, world = result.keypoints, camera_to_world(result.pose)
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            t0 = time.perf_counter()
            render_preview(video, Path(tmp) / f"preview{k}.mp4", kp.xy, kp.valid, kp.timestamps, world, kp.fps,
                           RenderOptions(trail=True))
            rates.append(kp.num_frames / (time.perf_counter() - t0))
    print(f"{video.name} ({result.info.width if result.info else '?'}x{result.info.height if result.info else '?'}, "
          f"{kp.num_frames} frames): preview rendering {statistics.median(rates):.1f} frames/s "
          f"(median of {args.repeats}; target >= 60)")


if __name__ == "__main__":
    main()
