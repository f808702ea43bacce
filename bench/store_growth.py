"""Acks and claims with a big SQLite store: an empty store vs one holding --events finished events.

    python bench/store_growth.py [--events 1000000] [--rate 200] [--seconds 30] [--claims 3000]

The big store gets --events finished jobs, each with its stored webhook and one attempt (3 rows per event),
written straight into the tables by bench/prune_load.py's `fill` (received a day ago, so nothing is pruned).
Then, on the empty store and on the big one, in that order:

1. ack      `wlmap run --serve` with the bench mapping (GraphQL + PATCH against bench/fakes.py answering after
            20 ms), an open-loop load of --rate signed webhooks/s for --seconds: p50 and p99 acknowledgement;
2. claim    in this process, --claims pending jobs ingested, then claimed one at a time and finished (the
            worker's store calls, without the runs): claims per second.

Targets (issue 16): both unchanged at 1,000,000 events, i.e. ratios big / empty near 1.0x. Runtime at the
default size: ~20 s to fill (0.84 GB of disk, in a temporary folder), ~2½ minutes in all.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import prune_load  # noqa: E402
import service_load  # noqa: E402

from mapper.service.store import Finish, NewDelivery, NewJob  # noqa: E402
from mapper.service.store.sqlite import SqliteStore  # noqa: E402

DAY = 86400.0


def acks(home: Path, fakes: str, store: Path, rate: float, seconds: float) -> tuple[float, float, int]:
    with service_load.running(prune_load.service(home, fakes, store, 100_000)) as server:
        service_load.opened(server.url, rate, 2)  # warm-up
        result = prune_load.load(server.url, rate, seconds)
    return result.percentile(50), result.percentile(99), result.ok


def claims(store: Path, count: int) -> tuple[float, float]:
    """Claims per second and CPU seconds per claim: `count` pending jobs claimed one at a time and finished.

    The rate waits on each COMMIT's fsync, which a disk shared with other work makes vary 5x from run to run;
    the CPU per claim (this process, every thread) is what a bigger store could change."""
    opened = SqliteStore(store)
    try:
        run = f"{time.time_ns()}"
        for n in range(count):
            delivery = NewDelivery((("x-id", str(n)),), b'{"n": %d}' % n, "sha", f"c-{run}-{n}", f"id:c-{run}-{n}")
            opened.ingest(delivery, [NewJob("bench", f"R-{run}-{n}", "bench.yaml")], dedupe_window=300)
        started, cpu = time.perf_counter(), time.process_time()
        done = 0
        while claimed := opened.claim(1, 60.0):
            for job in claimed:
                assert opened.finish(job.job, job.token, Finish("done", "bench"))
                done += 1
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert done >= count, (done, count)  # more: jobs the service left pending when it stopped, claimed too
        return done / took, cpu / done
    finally:
        opened.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="finished events in the big store")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--claims", type=int, default=3000)
    args = parser.parse_args()
    print(f"store_growth: {service_load.machine()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="wlmap-growth-") as tmp:
        work = Path(tmp)
        stores = {}
        for name in ("empty", "big"):
            home = work / name
            (home / "mappings").mkdir(parents=True)
            (home / "mappings" / "bench.yaml").write_text(service_load.MAPPING)
            stores[name] = (home, home / "wlmap.db")
            SqliteStore(home / "wlmap.db").close()
        began = time.perf_counter()
        prune_load.fill(stores["big"][1], args.events, time.time() - DAY, 1)
        # The fill leaves ~0.8 GB of dirty pages: written back during the first measure, they would slow its
        # fsyncs (an empty store's p99 of 105-140 ms next to the big one's 10-24 ms, measured before this).
        os.sync()
        size = prune_load.size(stores["big"][1])
        took = time.perf_counter() - began
        print(f"big store: {args.events:,} finished events, {size / 1e6:,.0f} MB, filled in {took:.0f} s")
        fakes = service_load.start("fakes", [sys.executable, str(BENCH / "fakes.py"), "--latency", "0.02"], work)
        results = {}
        with service_load.running(fakes):
            for name, (home, store) in stores.items():
                p50, p99, ok = acks(home, fakes.url, store, args.rate, args.seconds)
                rate, cpu = claims(store, args.claims)
                results[name] = (p99, rate, cpu)
                print(
                    f"   {name:5s} ack p50 {service_load.ms(p50)}, p99 {service_load.ms(p99)} ({ok} 2xx at "
                    f"{args.rate:g}/s for {args.seconds:g} s); claim + finish {rate:,.0f}/s, "
                    f"{cpu * 1e6:.0f} µs CPU a claim"
                )
    (empty_p99, empty_rate, empty_cpu), (big_p99, big_rate, big_cpu) = results["empty"], results["big"]
    print(
        f"   big / empty: ack p99 {big_p99 / empty_p99:.2f}x; claims {big_rate / empty_rate:.2f}x per second, "
        f"{big_cpu / empty_cpu:.2f}x CPU per claim"
    )


if __name__ == "__main__":
    main()
