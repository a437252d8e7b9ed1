"""Compare lifter architectures at an equal wall-clock training budget.

Trains each candidate (pose model plus a half-width trajectory model) with ``vp3d train`` for
``--minutes`` on the same data, seed and split, then prints its validation figures with
detector-like noise. Used to choose the shipped default; see its MODEL_CARD.md.

    python benchmarks/architecture_scan.py --data ../shared/data/mocap --minutes 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = {
    "243x256": (["3", "3", "3", "3", "3"], 256),
    "81x512": (["3", "3", "3", "3"], 512),
    "81x256": (["3", "3", "3", "3"], 256),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--samples-per-epoch", type=int, default=40960)
    parser.add_argument("--only", nargs="*", help="names from: " + ", ".join(CANDIDATES))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (widths, channels) in CANDIDATES.items():
            if args.only and name not in args.only:
                continue
            out = Path(tmp) / name
            cmd = [sys.executable, "-m", "vp3d_engine.cli", "train", "--data", *args.data, "--out", str(out),
                   "--filter-widths", *widths, "--channels", str(channels),
                   "--trajectory-channels", str(channels // 2), "--epochs", "100",
                   "--lr-decay", "0.9", "--samples-per-epoch", str(args.samples_per_epoch),
                   "--max-minutes", str(args.minutes), "--quiet", "--json", str(out) + ".json"]
            subprocess.run(cmd, check=True)
            history = json.loads(Path(str(out) + ".json").read_text())["history"]
            best = min(history, key=lambda r: r["val_mpjpe_mm"])
            speed = sorted(r["samples_per_s"] for r in history)[len(history) // 2]
            rows.append((name, len(history), speed, best["val_mpjpe_mm"], best["val_p_mpjpe_mm"],
                         best["val_root_error_mm"] or float("nan")))
            print(f"{name}: {rows[-1]}", flush=True)
    print(f"\n{'arch':10s}{'epochs':>8s}{'samples/s':>11s}{'MPJPE':>9s}{'P-MPJPE':>9s}{'root':>8s}"
          "  (validation, detector noise, mm)")
    for r in rows:
        print(f"{r[0]:10s}{r[1]:8d}{r[2]:11.0f}{r[3]:9.1f}{r[4]:9.1f}{r[5]:8.0f}")


if __name__ == "__main__":
    main()
