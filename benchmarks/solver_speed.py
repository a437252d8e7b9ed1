"""Rotation solving speed: frames of H36M-17 joints solved onto each rig preset per second (target:
100,000 on the 2-core CPU), median over repeats, on a real mocap take tiled to --frames; and the
same with the BVH channels (continuous Euler angles) computed from the solve (target: 100,000).

    python benchmarks/solver_speed.py [--frames 100000] [--repeats 5] [--preset h36m mixamo ue]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from converters.bvh import read_bvh
from converters.bvh_writer import _euler_channels
from converters.rigs import PRESETS
from converters.skeleton_maps import mocap_joints
from converters.solve import build_rig, solve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = (Path(__file__).resolve().parents[2] / "shared" / "data" / "mocap" / "bandai-namco-1"
               / "dataset-1_dash_normal_001.bvh")
    parser.add_argument("--bvh", default=str(default))
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", nargs="+", default=list(PRESETS))
    args = parser.parse_args()
    take = mocap_joints(read_bvh(args.bvh)).h36m
    joints = np.tile(take, (args.frames // len(take) + 1, 1, 1))[: args.frames]
    for name in args.preset:
        rig = build_rig(joints, name)
        times, with_channels = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            motion = solve(joints, 30.0, name, rig=rig)
            t1 = time.perf_counter()
            _euler_channels(motion, "ZXY")
            times.append(t1 - t0)
            with_channels.append(time.perf_counter() - t0)
        t_full = time.perf_counter()
        solve(joints, 30.0, name)
        t_full = time.perf_counter() - t_full
        print(f"{name:7s} ({len(rig.names)} joints): {args.frames / statistics.median(times):,.0f} frames/s "
              f"(median of {args.repeats}, {args.frames} frames, rig given); "
              f"with rig estimation {args.frames / t_full:,.0f} frames/s; solve + BVH channels "
              f"{args.frames / statistics.median(with_channels):,.0f} frames/s")


if __name__ == "__main__":
    main()
