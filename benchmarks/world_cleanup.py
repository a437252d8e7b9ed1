"""What each part of the world stage buys, side by side in one run: the shipped lifter on the
validation takes (2 seeded cameras each, detector noise), scored in world space against the mocap
(``vp3d evaluate --world``). Targets: foot skating under 5 mm/frame, jitter ratio at most 1.2,
penetration under 5 mm, world MPJPE no worse than without the clean-up. The smoothing rows are how
the default (``--smooth auto``) was chosen.

    python benchmarks/world_cleanup.py [--data ../shared/data/mocap] [--views 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vp3d_engine.evaluation import WorldSettings, evaluate

VARIANTS = [
    ("raw lifter output", WorldSettings("model", "none", "off", settle=False)),
    ("+ trajectory from 2D", WorldSettings("image", "none", "off", settle=False)),
    ("+ settled on the floor", WorldSettings("image", "none", "off")),
    ("+ feet locked", WorldSettings("image", "none", "lock")),
    ("+ oneeuro (default)", WorldSettings("image", "oneeuro", "lock")),
    ("  oneeuro:mincutoff=1,beta=0.5", WorldSettings("image", "oneeuro:mincutoff=1,beta=0.5", "lock")),
    ("  savgol (0.25 s)", WorldSettings("image", "savgol", "lock")),
    ("  savgol:window=0.5", WorldSettings("image", "savgol:window=0.5", "lock")),
    ("  butter (6 Hz)", WorldSettings("image", "butter", "lock")),
    ("  butter:cutoff=3", WorldSettings("image", "butter:cutoff=3", "lock")),
    ("default, trajectory model", WorldSettings("model", "oneeuro", "lock")),
]
COLUMNS = [("world_mpjpe_mm", "mpjpe"), ("root_drift_mm", "drift"), ("foot_skating_mm", "skate"),
           ("penetration_mm", "pen"), ("penetration_share", "pen%"), ("jitter_ratio", "jitter")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mocap"))
    parser.add_argument("--views", type=int, default=2)
    args = parser.parse_args()
    print(f"{'world stage':32s}" + "".join(f"{label:>9s}" for _, label in COLUMNS))
    for name, settings in VARIANTS:
        row = evaluate([args.data], "default", noise="detector", seed=0, views=args.views, world=settings)
        cells = [100 * row[k] if k == "penetration_share" else row[k] for k, _ in COLUMNS]
        print(f"{name:32s}" + "".join(f"{v:9.1f}" if label != "jitter" else f"{v:9.2f}"
                                      for v, (_, label) in zip(cells, COLUMNS, strict=True)))
    print(f"(mm, mm/frame, % of frames; skating of the mocap itself: {row['foot_skating_truth_mm']:.1f} mm/frame; "
          f"{row['frames']} frames)")


if __name__ == "__main__":
    main()
