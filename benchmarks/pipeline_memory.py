"""Peak memory of `vp3d-convert` on a 10-second and a 10-minute clip (the long one made by
looping a real clip), each in a fresh process. Target: under 1.5 GB, long/short ratio under 1.2.

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


def peak_rss_mb(video: Path, out: Path) -> tuple[float, float]:
    code = ("import resource, sys; from vp3d_engine.convert_cli import main; "
            f"rc = main([{str(video)!r}, '--out', {str(out)!r}, '--quiet']); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t0


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
    print(f"{'clip':10s}{'peak RSS MB':>13s}{'seconds':>10s}")
    for name, mb, sec in rows:
        print(f"{name:10s}{mb:13.0f}{sec:10.1f}")
    print(f"ratio long/short {rows[1][1] / rows[0][1]:.2f} (target < 1.2); largest {max(r[1] for r in rows):.0f} MB "
          "(target < 1500)")


if __name__ == "__main__":
    main()
