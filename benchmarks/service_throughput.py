"""``vp3d serve`` under load on loopback: sustained throughput with 1, 2 and 4 concurrent clients,
and the latency of status requests while the workers compute (target: p95 under 50 ms).

Each client uploads a clip, waits for its job to finish, and starts the next, ``--jobs`` times; a
separate poller asks for a job's status every 20 ms the whole time. Real pipeline, real clip
(the first ``--seconds`` of taiji_green_336p.mp4), ``--workers`` worker processes.

    python benchmarks/service_throughput.py [--workers 2] [--jobs 2] [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service.conftest import start_server, stop_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="jobs per client")
    parser.add_argument("--seconds", type=float, default=3.0, help="of the clip, per job")
    parser.add_argument("--clip", default=str(ROOT.parent / "shared" / "data" / "videos" / "taiji_green_336p.mp4"))
    args = parser.parse_args()
    clip = Path(args.clip)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "data", "--workers", str(args.workers))
        try:
            warm = server.upload(clip, end=str(args.seconds), formats="motion,bvh,glb")[1]["id"]
            server.wait(warm)  # workers have loaded their models
            print(f"{args.workers} workers, {args.jobs} jobs per client, {args.seconds:g} s of {clip.name} per job")
            print(f"{'clients':>8s}{'jobs':>6s}{'wall s':>9s}{'jobs/min':>10s}{'status p50 ms':>15s}{'p95 ms':>9s}")
            for clients in (1, 2, 4):
                latencies: list[float] = []
                stop = threading.Event()

                def poll(stop: threading.Event = stop, latencies: list[float] = latencies) -> None:
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        server.request(f"/api/jobs/{warm}")
                        latencies.append((time.perf_counter() - t0) * 1000)
                        time.sleep(0.02)

                def client() -> None:
                    for _ in range(args.jobs):
                        job = server.upload(clip, end=str(args.seconds), formats="motion,bvh,glb")[1]["id"]
                        assert server.wait(job, timeout=1800)["state"] == "done"

                poller = threading.Thread(target=poll)
                poller.start()
                t0 = time.perf_counter()
                threads = [threading.Thread(target=client) for _ in range(clients)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
                stop.set()
                poller.join()
                jobs = clients * args.jobs
                p95 = statistics.quantiles(latencies, n=20)[-1]
                print(f"{clients:8d}{jobs:6d}{wall:9.1f}{60 * jobs / wall:10.1f}{statistics.median(latencies):15.1f}"
                      f"{p95:9.1f}", flush=True)
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
