"""Feet and floor on real video, before and after the world stage: each clip is detected once, then
lifted and solved with the raw settings (trajectory as the model gives it, no smoothing, no
settling on the floor, feet as lifted) and with the defaults, side by side. Per clip and setting:

- lowest: the lower ankle's height over the floor less its height over the sole (cm), median and
  10th-90th percentile over the clip; a character standing on the floor reads 0;
- drift: median lowest point over the last second minus over the first (cm);
- skate: mean horizontal movement per frame of a foot the clip's contacts say is planted (mm);
- contact: share of frames with a foot planted.

    python benchmarks/feet_on_real_video.py [VIDEO ...]   (default: the shared videos and cam02 of the lab clip)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

from converters.motion import forward_kinematics
from converters.rigs import ankle_joints
from converters.world import ANKLE_HEIGHT_M
from vp3d_engine.convert import ConvertOptions, Models, convert
from vp3d_engine.pipeline import PipelineOptions
from vp3d_engine.world_stage import WorldMotion, solve_world

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = [SHARED / "videos" / n for n in ("dance_ball_480p.mp4", "child_dance_480p.mp4", "taiji_green_336p.mp4",
                                         "taiji_indoor_720p.mp4")]
LAB = SHARED / "multiview" / "pose2sim-multiperson" / "cam02.mp4"  # the man: --person 1
SETTINGS = {"raw": {"trajectory": "model", "smoothing": "none", "feet": "off", "settle": False},
            "default": {"trajectory": "image", "smoothing": "auto", "feet": "lock", "settle": True}}


def figures(world: WorldMotion) -> dict[str, float]:
    motion, contacts = world.motion, world.contacts
    ankles = forward_kinematics(motion)[0][:, [motion.rig.index(n) for n in ankle_joints(motion.rig.preset)]]
    lowest = (ankles[..., 1].min(axis=1) - ANKLE_HEIGHT_M) * 100
    second = max(1, round(motion.fps))
    step = np.linalg.norm(np.diff(ankles[..., [0, 2]], axis=0), axis=-1) * 1000
    planted = contacts[1:] & contacts[:-1]
    return {"lowest": float(np.median(lowest)), "p10": float(np.percentile(lowest, 10)),
            "p90": float(np.percentile(lowest, 90)),
            "drift": float(np.median(lowest[-second:]) - np.median(lowest[:second])),
            "skate": float(step[planted].mean()) if planted.any() else float("nan"),
            "contact": float(contacts.any(axis=1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    args = parser.parse_args()
    clips = [(v, 0) for v in args.videos] or [*((v, 0) for v in CLIPS), (LAB, 1)]
    models = Models()
    print(f"{'clip':28s}{'setting':>9s}{'lowest cm (p10..p90)':>24s}{'drift cm':>10s}{'skate mm':>10s}"
          f"{'contact':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for video, person in clips:
            detected = convert(video, ConvertOptions(pipeline=PipelineOptions(person=person), formats=["npz"]),
                               Path(tmp) / video.stem, models=models)
            for name, setting in SETTINGS.items():
                options = ConvertOptions(pipeline=PipelineOptions(trajectory=str(setting["trajectory"])),
                                         formats=["npz"])
                lifted = convert(video, options, Path(tmp) / f"{video.stem}-{name}", keypoints=detected.files[0],
                                 models=models)
                f = figures(solve_world(lifted.pose, smoothing=str(setting["smoothing"]), feet=str(setting["feet"]),
                                        settle=bool(setting["settle"])))
                spread = f"{f['lowest']:.1f} ({f['p10']:.1f}..{f['p90']:.1f})"
                print(f"{video.stem[:28]:28s}{name:>9s}{spread:>24s}{f['drift']:10.1f}{f['skate']:10.1f}"
                      f"{f['contact']:9.2f}", flush=True)


if __name__ == "__main__":
    main()
