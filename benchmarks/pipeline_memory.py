"""Peak memory of `vp3d-convert` on a 10-second and a 10-minute clip (the long one made by
looping a real clip), each in a fresh process, with its detection workers: the resident memory
of the whole process tree, sampled every 0.2 s. Target: under 1.5 GB, long/short ratio under 1.2.

    python benchmarks/pipeline_memory.py [--video ../shared/data/videos/taiji_green_336p.mp4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def loop_clip(src: Path, dst: Path, seconds: float) -> None:
    """Re-encode ``src`` over and over (with continuous timestamps) until ``seconds`` long."""
    import av

    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(stream)]
        rate = stream.average_rate
    out = av.open(str(dst), "w")
    enc = out.add_stream("libx264", rate=rate)
    enc.height, enc.width = frames[0].shape[:2]
    enc.pix_fmt = "yuv420p"
    enc.options = {"preset": "ultrafast"}
    total = int(seconds * float(rate))
    for i in range(total):
        img = frames[i % len(frames)] if (i // len(frames)) % 2 == 0 else frames[len(frames) - 1 - i % len(frames)]
        for packet in enc.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(packet)
    for packet in enc.encode():
        out.mux(packet)
    out.close()


def _tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        rss[int(entry.name)] = next((int(line.split()[1]) for line in status.splitlines()
                                     if line.startswith("VmRSS:")), 0)
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss.get(pid, 0) for pid in tree)


def peak_rss_mb(video: Path, out: Path, workers: int | None = None) -> tuple[float, float]:
    extra = [] if workers is None else ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vp3d_engine.convert_cli", str(video), "--out", str(out),
                             "--quiet", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(f"vp3d-convert failed on {video} (exit {proc.returncode})")
    return peak / 1024, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "taiji_green_336p.mp4"
    parser.add_argument("--video", default=str(default))
    parser.add_argument("--long-seconds", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp) / "short.mp4", Path(tmp) / "long.mp4"
        loop_clip(Path(args.video), short, 10.0)
        loop_clip(Path(args.video), long, args.long_seconds)
        rows = [(name, *peak_rss_mb(p, Path(tmp))) for name, p in (("10 s", short), (f"{args.long_seconds:g} s", long))]
        one = peak_rss_mb(long, Path(tmp), workers=1)
    print(f"(default workers, one per core; {args.long_seconds:g} s with --workers 1: {one[0]:.0f} MB, {one[1]:.1f} s)")
    print(f"{'clip':10s}{'peak RSS MB':>13s}{'seconds':>10s}")
    for name, mb, sec in rows:
        print(f"{name:10s}{mb:13.0f}{sec:10.1f}")
    print(f"ratio long/short {rows[1][1] / rows[0][1]:.2f} (target < 1.2); largest {max(r[1] for r in rows):.0f} MB "
          "(target < 1500)")


if __name__ == "__main__":
    main()
