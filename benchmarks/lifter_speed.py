"""Lifter speed: inference frames/s (with and without flip augmentation) and training samples/s.

Prints medians over repeated runs, measured side by side in one process:

    python benchmarks/lifter_speed.py                      # the shipped default checkpoint
    python benchmarks/lifter_speed.py --checkpoint DIR --frames 3000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from converters.joints import COCO17, H36M17
from vp3d_engine.checkpoints import build_models, load_checkpoint
from vp3d_engine.lifters.inference import predict_sequence


def _median_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--frames", type=int, default=3000, help="sequence length for inference")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024, help="training batch")
    parser.add_argument("--train-steps", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    lifter = load_checkpoint(args.checkpoint)
    cfg = lifter.config
    print(f"checkpoint {lifter.path}: {lifter.receptive_field} frames, {cfg['architecture']['channels']} channels, "
          f"trajectory {'yes' if lifter.trajectory is not None else 'no'}")
    x = np.random.default_rng(0).normal(scale=0.3, size=(args.frames, 17, 2)).astype(np.float32)
    perm_in, perm_out = COCO17.flip_permutation(), H36M17.flip_permutation()
    rows = []
    for flip in (False, True):
        t = _median_time(lambda f=flip: predict_sequence(lifter.pose, x, flip=f, flip_perm_in=perm_in,  # type: ignore[misc]
                                                         flip_perm_out=perm_out), args.repeats)
        rows.append((f"pose inference, flip={'on' if flip else 'off'}", args.frames / t, "frames/s"))
    if lifter.trajectory is not None:
        traj = lifter.trajectory
        t = _median_time(lambda: predict_sequence(traj, x, flip=True, flip_perm_in=perm_in,
                                                  flip_perm_out=np.zeros(1, dtype=np.int64)), args.repeats)
        rows.append(("trajectory inference, flip=on", args.frames / t, "frames/s"))

    pose, traj_m = build_models(cfg, optimized_1f=True)
    params = list(pose.parameters()) + (list(traj_m.parameters()) if traj_m is not None else [])
    opt = torch.optim.Adam(params, amsgrad=True)
    xb = torch.randn(args.batch_size, pose.receptive_field, 17, 2)
    yb = torch.randn(args.batch_size, 1, 17, 3)

    def step() -> None:
        loss = (pose(xb) - yb).norm(dim=-1).mean()
        if traj_m is not None:
            loss = loss + (traj_m(xb)[:, :, 0] - yb[:, :, 0]).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = _median_time(step, args.train_steps)
    rows.append(("training (pose + trajectory), 1f model", args.batch_size / t, "samples/s"))
    print(f"\n{'measure':42s}{'median':>12s}")
    for name, value, unit in rows:
        print(f"{name:42s}{value:12.0f} {unit}")


if __name__ == "__main__":
    main()
