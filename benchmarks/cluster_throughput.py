"""Batch throughput: one local process against a Dask cluster of one and of two workers.

The four shared clips (their first ``--seconds`` each) are converted to NPZ and BVH by
``vp3d-convert``, ``--repeats`` times per setting, in turns (so machine noise falls on every
setting alike); the medians are printed, with clips per minute and the per-clip overhead of going
through the cluster (one worker against the local run with the same single detection process).
Workers are real processes on 127.0.0.1 (``distributed.LocalCluster``, one thread each), started
before the timing: the time to start a worker is not counted, the time each worker takes to load
its models is.

    python benchmarks/cluster_throughput.py [--seconds 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
BIN = Path(sys.executable).parent


def run(clips: list[Path], extra: list[str], out: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([str(BIN / "vp3d-convert"), *map(str, clips), "--out", str(out), "--npz", "--bvh",
                           "--quiet", *extra], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"vp3d-convert failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    from distributed import LocalCluster

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0, help="seconds of each clip (0: whole clips)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    clips = sorted(VIDEOS.glob("*.mp4"))
    span = ["--end", str(args.seconds)] if args.seconds else []
    settings: dict[str, list[str]] = {
        "local, 1 detection process": ["--workers", "1"],
        "local, default (parallel detection)": [],
    }
    clusters = {}
    for n in (1, 2):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        clusters[n] = cluster
        settings[f"dask, {n} worker{'s' if n > 1 else ''} x 1 thread"] = ["--scheduler", cluster.scheduler_address]
    times: dict[str, list[float]] = {k: [] for k in settings}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                for name, extra in settings.items():
                    times[name].append(run(clips, span + extra, Path(tmp) / f"{r}-{len(times[name])}-{name[:5]}"))
    finally:
        for cluster in clusters.values():
            cluster.close()
    print(f"{len(clips)} clips, {args.seconds or 'whole'} s each, {args.repeats} runs per setting (median)")
    base = statistics.median(times["local, 1 detection process"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:38s} {med:6.1f} s  {len(clips) / med * 60:5.1f} clips/min  x{base / med:4.2f}")
    one = statistics.median(times["dask, 1 worker x 1 thread"])
    print(f"per-clip overhead of the cluster (1 worker against 1 local detection process): "
          f"{(one - base) / len(clips):+.2f} s")


if __name__ == "__main__":
    main()
