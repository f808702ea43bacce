"""From acknowledgement to the start of the run: how fast an idle worker process hears of a new job.

    python bench/wake_latency.py [--count 200] [--processes 0,default]

Webhooks are sent one at a time, 20 ms apart (open loop at 50/s), to an otherwise idle service; for each, the
store has when the webhook was received and when its first attempt started. Printed per `--processes`
setting: the median and p99 of that gap, next to the `--poll` interval a worker waits for when nothing wakes
it (0.5 s). With several processes the listener wakes the worker processes with a byte on a socket pair
(mapper/service/wakeups.py); with one, it wakes its own pool directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import loadgen  # noqa: E402
from service_load import machine, running, start, wlmap  # noqa: E402


def gaps(store: Path) -> list[float]:
    with contextlib.closing(sqlite3.connect(store, timeout=30)) as conn:
        rows = conn.execute(
            "SELECT MIN(a.started_at) - d.received_at FROM deliveries d JOIN jobs j ON j.delivery = d.id "
            "JOIN attempts a ON a.job = j.id GROUP BY d.id"
        ).fetchall()
    return sorted(row[0] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--processes", default="0,default")
    args = parser.parse_args()
    print(f"wake_latency: {machine()}")
    with tempfile.TemporaryDirectory(prefix="wlmap-bench-") as tmp:
        work = Path(tmp)
        with running(start("fakes", [sys.executable, str(BENCH / "fakes.py"), "--latency", "0.02"], work)) as fk:
            for setting in args.processes.split(","):
                extra = [] if setting == "default" else ["--processes", setting]
                with running(wlmap(work, fk.url, None, None, extra)) as server:
                    url = f"{server.url}/webhooks"
                    asyncio.run(loadgen.open_loop(url, loadgen.prepared(url, args.count), 50))
                    time.sleep(1.0)
                    found = gaps(server.store)  # type: ignore[attr-defined]
                p50, p99 = statistics.median(found), found[min(len(found) - 1, int(len(found) * 0.99))]
                print(
                    f"   --processes {setting:8s} {len(found)} runs: ack to start p50 {p50 * 1000:.1f} ms, "
                    f"p99 {p99 * 1000:.1f} ms (the poll alone would wait up to 500 ms)"
                )


if __name__ == "__main__":
    main()
