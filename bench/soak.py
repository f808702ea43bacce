"""Resident memory of the service over a soak at a steady rate: does it grow after warm-up?

    python bench/soak.py [--seconds 600] [--rate 200] [--window 10] [--warmup 60]

`wlmap run --serve` (the bench mapping: GraphQL + PATCH against bench/fakes.py answering after 20 ms, default
options, a new SQLite store) takes an open-loop load of --rate signed webhooks/s, each with its own delivery id,
for --seconds, in windows of --window seconds. After each window the resident memory (VmRSS) of the service's
process and of every process it started is read from /proc. Printed: RSS at the end of warm-up and at the end,
the largest, the growth after warm-up in MB and MB per minute (a least-squares line through the windows after
warm-up, and through the second half of the run: SQLite's page caches fill for the first minutes), the ack p99
of each minute, and how many webhooks were acknowledged. Targets (issue 16): no growth after warm-up; RSS < 100
MB per process. The documented run takes 10 minutes (the default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import loadgen  # noqa: E402
import service_load  # noqa: E402


def tree(pid: int) -> list[int]:
    """The process and all its descendants (from /proc/<pid>/task/<tid>/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    args = parser.parse_args()
    print(f"soak: {service_load.machine()}, python {sys.version.split()[0]}")
    samples: list[tuple[float, int, int, int]] = []  # (seconds since start, total kB, largest process kB, processes)
    minute: list[float] = []
    acknowledged = sent = 0
    with tempfile.TemporaryDirectory(prefix="wlmap-soak-") as tmp:
        work = Path(tmp)
        fakes = service_load.start("fakes", [sys.executable, str(BENCH / "fakes.py"), "--latency", "0.02"], work)
        with service_load.running(fakes), service_load.running(service_load.wlmap(work, fakes.url, 16, None)) as server:
            url = f"{server.url}/webhooks"
            began = time.perf_counter()
            window = 0
            while (elapsed := time.perf_counter() - began) < args.seconds:
                requests = loadgen.prepared(url, int(args.rate * args.window), run=f"soak-{window}")
                result = asyncio.run(loadgen.open_loop(url, requests, args.rate))
                acknowledged, sent = acknowledged + result.ok, sent + len(requests)
                minute += result.latencies
                sizes = [rss_kb(pid) for pid in tree(server.proc.pid)]
                elapsed = time.perf_counter() - began
                samples.append((elapsed, sum(sizes), max(sizes), len(sizes)))
                if len(minute) >= args.rate * 60 or elapsed >= args.seconds:
                    ordered = sorted(minute)
                    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
                    print(
                        f"   {elapsed:5.0f} s: RSS {sum(sizes) / 1024:6.1f} MB in {len(sizes)} process(es), "
                        f"largest {max(sizes) / 1024:5.1f} MB; ack p99 {service_load.ms(p99)}"
                    )
                    minute = []
                window += 1
    warm = [s for s in samples if s[0] >= args.warmup] or samples[-1:]
    start_mb, end_mb = warm[0][1] / 1024, samples[-1][1] / 1024
    per_minute = slope([(s[0] / 60, s[1] / 1024) for s in warm])
    late = [s for s in samples if s[0] >= samples[-1][0] / 2] or samples[-1:]  # the second half of the run
    late_per_minute = slope([(s[0] / 60, s[1] / 1024) for s in late])
    print(
        f"   after warm-up ({args.warmup:g} s): {start_mb:.1f} MB -> {end_mb:.1f} MB at the end "
        f"({end_mb - start_mb:+.1f} MB, {per_minute:+.2f} MB per minute; over the second half "
        f"{late_per_minute:+.2f} MB per minute); largest process {max(s[2] for s in samples) / 1024:.1f} MB "
        f"(target < 100 MB); {acknowledged}/{sent} acknowledged"
    )


if __name__ == "__main__":
    main()
