"""Acknowledgement latency while a big SQLite store is pruned (issue 15), next to the same load without pruning.

    python bench/prune_load.py [--jobs 500000] [--rate 200] [--seconds 30] [--quick]

The store gets 2 x --jobs finished jobs, each with its stored webhook and one attempt (3 rows per job), half
received 60 days ago and half 40 days ago, written straight into the tables (the service's own layout, made by
opening the store first). Then `wlmap run --serve` runs the bench mapping (GraphQL + PATCH against bench/fakes.py
answering after 20 ms) on every webhook of an open-loop load of --rate webhooks/s for --seconds, three times:

1. idle       --retention-days 100000: nothing to prune; the baseline;
2. service    --retention-days 50: the service's hourly prune runs at start-up, over the 60-day half
              (in its own writer thread, in batches of 500 jobs, then incremental vacuum);
3. operator   `wlmap prune --older-than 30d` in another process, over the 40-day half, while the service runs
              (retention back at 100000 days).

Latency is counted from when each webhook was due (bench/loadgen.py, open loop). Printed per phase: p50, p99,
max and the 2xx count, how long the prune took, how many rows it removed, and the file size before and after.
A phase whose prune ended before its load window did says so: the rest of that window ran without pruning.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import loadgen  # noqa: E402
import service_load  # noqa: E402

from mapper.service.store.sqlite import SqliteStore  # noqa: E402

DAY = 86400.0
BATCH = 20_000  # rows per INSERT transaction while filling
FILLED = [0]  # the last id `build` wrote


def fill(store: Path, jobs: int, received: float, first_id: int) -> None:
    """`jobs` done jobs, each with its webhook and one attempt, received at `received`; ids from first_id."""
    headers = json.dumps([["content-type", "application/json"], ["x-scope-topic", "scenario_session/completed"]])
    trace = json.dumps({"mapping": "bench", "stages": [{"stage": "step", "name": "update-thing", "status": 200}]})
    with contextlib.closing(sqlite3.connect(store, isolation_level=None)) as conn:
        conn.execute("PRAGMA synchronous = OFF")  # filling only: the service opens the file as it always does
        for start in range(first_id, first_id + jobs, BATCH):
            ids = range(start, min(start + BATCH, first_id + jobs))
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO deliveries (id, received_at, delivery_id, dedupe_key, body_sha256, signature, summary, "
                "headers, body, status) VALUES (?, ?, ?, ?, ?, 'verified', ?, ?, ?, 'accepted')",
                (
                    (
                        n,
                        received,
                        f"old-{n}",
                        f"id:old-{n}",
                        "0" * 64,
                        f"scenario_session/completed ScenarioSession old-{n}",
                        headers,
                        json.dumps({"data": {"id": f"old-{n}", "url": f"https://cms.scopear.com/object/old-{n}"}}),
                    )
                    for n in ids
                ),
            )
            conn.executemany(
                "INSERT INTO jobs (id, delivery, mapping, mapping_file, resource_key, status, attempts, "
                "next_attempt_at, token, last_reason, created_at, updated_at) VALUES (?, ?, 'bench-scope-to-target', "
                "'bench.yaml', ?, 'done', 1, ?, 1, 'every step succeeded', ?, ?)",
                ((n, n, f"old-{n}", received, received, received + 1) for n in ids),
            )
            conn.executemany(
                "INSERT INTO attempts (job, number, token, started_at, finished_at, status, reason, trace) "
                "VALUES (?, 1, 1, ?, ?, 'done', 'every step succeeded', ?)",
                ((n, received, received + 1, trace) for n in ids),
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def build(home: Path, jobs: int) -> Path:
    store = home / "wlmap.db"
    SqliteStore(store).close()  # the service's layout (and incremental vacuum) first
    now = time.time()
    fill(store, jobs, now - 60 * DAY, 1)
    fill(store, jobs, now - 40 * DAY, jobs + 1)
    FILLED[0] = 2 * jobs
    return store


def service(home: Path, fakes: str, store: Path, retention_days: float) -> service_load.Server:
    port = service_load.free_port()
    command = service_load.serve_command(
        home / "mappings", store, port, "--workers", "16", "--retention-days", str(retention_days)
    )
    env = service_load.service_env(fakes)
    return service_load.start("wlmap", command, home, env, ready=f"http://127.0.0.1:{port}")


def rows(store: Path) -> int:
    """Rows left of the events `build` wrote (ids up to FILLED[0]): what the prunes remove."""
    last = FILLED[0]
    with contextlib.closing(sqlite3.connect(store, timeout=30)) as conn:
        counts = [
            conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} <= ?", (last,)).fetchone()[0]
            for table, column in (("jobs", "id"), ("attempts", "job"), ("deliveries", "id"))
        ]
        return sum(int(count) for count in counts)


@dataclass
class Phase:
    name: str
    load: loadgen.Result
    prune_seconds: float | None = None  # None: no prune in this phase
    removed: int = 0
    size_before: int = 0
    size_after: int = 0

    def line(self) -> str:
        r = self.load
        text = (
            f"   {self.name:9s} p50 {service_load.ms(r.percentile(50))}, p99 {service_load.ms(r.percentile(99))}, "
            f"max {service_load.ms(max(r.latencies))}; {r.ok}/{len(r.latencies)} 2xx, {r.errors} errors"
        )
        if self.prune_seconds is not None:
            text += (
                f"\n   {'':9s} pruned {self.removed:,} rows in {self.prune_seconds:.1f} s; "
                f"file {self.size_before / 1e6:,.0f} MB -> {self.size_after / 1e6:,.0f} MB"
            )
        return text


def load(url: str, rate: float, seconds: float) -> loadgen.Result:
    return service_load.opened(url, rate, seconds)


def size(store: Path) -> int:
    return sum(p.stat().st_size for p in store.parent.glob(store.name + "*"))


def idle_phase(home: Path, fakes: str, store: Path, rate: float, seconds: float) -> Phase:
    with service_load.running(service(home, fakes, store, 100_000)) as server:
        service_load.opened(server.url, rate, 2)  # warm-up
        return Phase("idle", load(server.url, rate, seconds))


def service_phase(home: Path, fakes: str, store: Path, rate: float, seconds: float) -> Phase:
    before_rows, before_size = rows(store), size(store)
    started = time.perf_counter()
    with service_load.running(service(home, fakes, store, 50)) as server:
        result = load(server.url, rate, seconds)
        log = server.log
        while "pruned " not in log.read_text(errors="replace"):  # the prune's log line: it has ended
            if time.perf_counter() - started > 3600:
                raise RuntimeError("the service's prune did not end within an hour")
            time.sleep(0.5)
        took = time.perf_counter() - started
    return Phase("service", result, took, before_rows - rows(store), before_size, size(store))


def operator_phase(home: Path, fakes: str, store: Path, rate: float, seconds: float) -> Phase:
    before_rows, before_size = rows(store), size(store)
    with service_load.running(service(home, fakes, store, 100_000)) as server:
        service_load.opened(server.url, rate, 2)
        took: list[float] = []

        def prune() -> None:
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "mapper.cli", "prune", "--older-than", "30d", "--store", str(store)],
                check=True,
                capture_output=True,
            )
            took.append(time.perf_counter() - began)

        pruning = threading.Thread(target=prune)
        pruning.start()
        result = load(server.url, rate, seconds)
        pruning.join()
    return Phase("operator", result, took[0], before_rows - rows(store), before_size, size(store))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=500_000, help="jobs per half (each with 3 rows)")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="--jobs 50000 --seconds 10")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.seconds = 50_000, 10.0
    print(f"prune_load: {service_load.machine()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="wlmap-prune-") as tmp:
        work = Path(tmp)
        home = work / "home"
        (home / "mappings").mkdir(parents=True)
        (home / "mappings" / "bench.yaml").write_text(service_load.MAPPING)
        began = time.perf_counter()
        store = build(home, args.jobs)
        print(
            f"store: {2 * args.jobs:,} finished jobs ({rows(store):,} rows), {size(store) / 1e6:,.0f} MB, "
            f"built in {time.perf_counter() - began:.0f} s"
        )
        fakes = service_load.start("fakes", [sys.executable, str(BENCH / "fakes.py"), "--latency", "0.02"], work)
        with service_load.running(fakes):
            print(f"\nacknowledgement latency, open loop at {args.rate:g} webhooks/s for {args.seconds:g} s each:")
            phases = [
                idle_phase(home, fakes.url, store, args.rate, args.seconds),
                service_phase(home, fakes.url, store, args.rate, args.seconds),
                operator_phase(home, fakes.url, store, args.rate, args.seconds),
            ]
        for phase in phases:
            print(phase.line())
            if phase.prune_seconds is not None and phase.prune_seconds < args.seconds:
                print(f"   {'':9s} (the prune ended before the load did: part of the window ran without it)")
        base = phases[0].load.percentile(99)
        for phase in phases[1:]:
            print(f"   p99 ratio {phase.name} / idle: {phase.load.percentile(99) / base:.2f}x")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
