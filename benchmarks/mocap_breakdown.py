"""Where a lifter's mocap validation error sits, for checkpoints side by side.

The validation takes of ``vp3d evaluate`` (same split, same seeded cameras, detector-like noise by
default), lifted by each checkpoint; printed per checkpoint:

- MPJPE, MPJPE after a per-frame rotation only (what is left once the lean and heading are
  right), N-MPJPE (after scale only) and P-MPJPE, per group of actions and overall;
- MPJPE by how far off the camera's optical axis the person is (angle of the ray to the pelvis):
  whole-take views of walks and runs put people near the edges of the picture, where the camera
  sees them from the side of its axis;
- MPJPE per joint;
- the lifted body's proportions against the actor's (ratio of means over all frames): shoulder
  and hip width, torso (pelvis to thorax), thigh, shin, upper arm and forearm. A lifter trained on
  reshaped bodies (``BodyShape``) that reads the actors as broader or longer than they are shows
  it here.

    python benchmarks/mocap_breakdown.py CHECKPOINT [CHECKPOINT ...] [--noise detector|none] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.joints import COCO17, H36M17  # noqa: E402
from vp3d_engine import metrics  # noqa: E402
from vp3d_engine.checkpoints import load_checkpoint  # noqa: E402
from vp3d_engine.evaluation import make_views  # noqa: E402
from vp3d_engine.lifters.inference import predict_sequence  # noqa: E402
from vp3d_engine.training.mocap_data import find_bvh_files, is_validation, load_takes  # noqa: E402

OFF_AXIS = (0, 10, 20, 30, 90)  # degrees
GROUPS = {"gestures": ("wave", "raise", "bye"), "locomotion": ("walk", "run", "dash")}
J = H36M17.index
PROPORTIONS = {
    "shoulder width": ((J("left_shoulder"), J("right_shoulder")),),
    "hip width": ((J("left_hip"), J("right_hip")),),
    "torso": ((J("pelvis"), J("thorax")),),
    "thigh": ((J("left_hip"), J("left_knee")), (J("right_hip"), J("right_knee"))),
    "shin": ((J("left_knee"), J("left_ankle")), (J("right_knee"), J("right_ankle"))),
    "upper arm": ((J("left_shoulder"), J("left_elbow")), (J("right_shoulder"), J("right_elbow"))),
    "forearm": ((J("left_elbow"), J("left_wrist")), (J("right_elbow"), J("right_wrist"))),
}


def group_of(action: str) -> str:
    return next((g for g, words in GROUPS.items() if any(w in action for w in words)), "other")


def rotation_aligned(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred (T,J,3)`` turned per frame onto ``gt`` about the root (Kabsch, no scale)."""
    h = np.einsum("tji,tjk->tik", pred, gt)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    vt[:, -1] *= d[:, None]
    return pred @ (u @ vt)


def length(pose: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> float:
    return float(np.mean([np.linalg.norm(pose[:, a] - pose[:, b], axis=-1).mean() for a, b in pairs]))


def breakdown(checkpoint: str, views: list) -> dict:
    lifter = load_checkpoint(checkpoint)
    pi, po = COCO17.flip_permutation(), H36M17.flip_permutation()
    rows: dict[str, list[tuple[int, dict[str, float]]]] = defaultdict(list)
    joints, ratios = [], defaultdict(list)
    off_sum, off_count = np.zeros(len(OFF_AXIS) - 1), np.zeros(len(OFF_AXIS) - 1)
    for v in views:
        pred = predict_sequence(lifter.pose, v.inputs, flip=True, flip_perm_in=pi, flip_perm_out=po)
        pred, gt = pred - pred[:, :1], v.pose - v.pose[:, :1]
        figures = {"MPJPE": metrics.mpjpe(pred, gt), "rotated": metrics.mpjpe(rotation_aligned(pred, gt), gt),
                   "N-MPJPE": metrics.n_mpjpe(pred, gt), "P-MPJPE": metrics.p_mpjpe(pred, gt)}
        for group in (group_of(v.action), "all"):
            rows[group].append((len(pred), figures))
        joints.append(np.linalg.norm(pred - gt, axis=-1))
        ray = np.degrees(np.arctan2(np.linalg.norm(v.trajectory[:, :2], axis=1), v.trajectory[:, 2]))
        bins = np.clip(np.digitize(ray, OFF_AXIS) - 1, 0, len(OFF_AXIS) - 2)
        off_sum += np.bincount(bins, weights=joints[-1].mean(1), minlength=len(OFF_AXIS) - 1)
        off_count += np.bincount(bins, minlength=len(OFF_AXIS) - 1)
        for name, pairs in PROPORTIONS.items():
            ratios[name].append((len(pred), length(pred, pairs), length(gt, pairs)))
    table = {g: {k: sum(n * f[k] for n, f in items) / sum(n for n, _ in items) * 1000 for k in items[0][1]}
             | {"frames": sum(n for n, _ in items)} for g, items in rows.items()}
    per_joint = np.concatenate(joints).mean(0) * 1000
    proportion = {name: sum(n * p for n, p, _ in r) / sum(n * t for n, _, t in r) for name, r in ratios.items()}
    off_axis = off_sum / np.maximum(off_count, 1) * 1000
    return {"table": table, "per_joint": per_joint, "proportion": proportion, "off_axis": off_axis,
            "off_axis_frames": off_count}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="+")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mocap"))
    ap.add_argument("--noise", default="detector", choices=["detector", "none"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = {}
    for ck in args.checkpoint:
        fraction = load_checkpoint(ck).config.get("training", {}).get("val_fraction", 0.1)
        files = [f for f in find_bvh_files([Path(args.data)]) if is_validation(f.stem, fraction)]
        views = make_views(load_takes(files, 30.0), seed=args.seed, views=2, noise=args.noise)
        results[ck] = breakdown(ck, views)
    names = list(results)
    print(f"mocap validation ({args.noise} 2D, seed {args.seed}), mm; columns: " + ", ".join(
        f"#{i + 1} {n}" for i, n in enumerate(names)))
    print(f"{'group':12s} {'frames':>6s}  " + "  ".join(f"{'#' + str(i + 1) + ' MPJPE rotated N-MPJPE P-MPJPE':>34s}"
                                                    for i in range(len(names))))
    for group in ("gestures", "locomotion", "other", "all"):
        if group not in results[names[0]]["table"]:
            continue
        frames = results[names[0]]["table"][group]["frames"]
        cells = "  ".join(" ".join(f"{results[n]['table'][group][k]:8.1f}" for k in ("MPJPE", "rotated", "N-MPJPE",
                                                                                    "P-MPJPE")).rjust(34)
                          for n in names)
        print(f"{group:12s} {frames:6d}  {cells}")
    print("\nMPJPE by the angle between the optical axis and the ray to the pelvis, mm")
    for j in range(len(OFF_AXIS) - 1):
        frames = int(results[names[0]]["off_axis_frames"][j])
        print(f"  {OFF_AXIS[j]:2d}-{OFF_AXIS[j + 1]:2d} degrees {frames:6d} frames  "
              + "  ".join(f"#{i + 1} {results[n]['off_axis'][j]:6.1f}" for i, n in enumerate(names)))
    print("\nMPJPE per joint, mm")
    for j, joint in enumerate(H36M17.names[1:], 1):
        print(f"  {joint:15s} " + "  ".join(f"#{i + 1} {results[n]['per_joint'][j]:6.1f}" for i, n in enumerate(names)))
    print("\nlifted / actual body proportions (1.00: the actors' own)")
    for name in PROPORTIONS:
        print(f"  {name:15s} " + "  ".join(f"#{i + 1} {results[n]['proportion'][name]:5.2f}"
                                            for i, n in enumerate(names)))


if __name__ == "__main__":
    main()
