"""Scale-out on one PostgreSQL: end-to-end events/s with 1, 2 and 3 worker processes, next to SQLite.

    python bench/postgres_scale.py [--events 3000] [--workers 16] [--processes 1,2,3] [--store postgresql://...]

Every configuration gets the same signed webhooks (bench/loadgen.py, closed loop, 50 connections) and the same
mapping: a GraphQL query to the fake Scope AR endpoint, then a PATCH to the fake target, each answering after
20 ms (bench/fakes.py). Measured: from the first send until the target has seen every effect.

- sqlite:     one `wlmap run --serve` process (listener and workers) on a SQLite file: the embedded baseline;
- postgres/N: one `--role listener` process and N `--role worker` processes on one PostgreSQL database
              (a fresh schema each time, dropped afterwards).

The database comes from --store, else $WLMAP_TEST_POSTGRES, else postgresql://postgres@127.0.0.1:5432/test.
Every process runs on this machine, fakes and load generator included: the ratios say how far the queue lets
workers scale on these cores, not what separate machines would reach.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import loadgen  # noqa: E402
import service_load  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MAPPING = service_load.MAPPING  # the same workload as the SQLite figures of bench/service_load.py


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        service_load.terminate(self.proc)


free_port = service_load.free_port


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return bytes(answer.read())


def start(name: str, command: Sequence[str], home: Path, env: dict[str, str], health: str | None) -> Process:
    log = home / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=home, env={**os.environ, **env})
    process = Process(name, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        if health is None:
            if log.read_text(errors="replace").startswith("ready "):
                return process
        else:
            with contextlib.suppress(OSError):
                get(f"{health}/readyz")
                return process
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            process.stop()


def wlmap(home: Path, fakes: str, store: str, role: str, workers: int, name: str) -> tuple[Process, str]:
    port = free_port()
    command = service_load.serve_command(
        home / "mappings", store, port, "--workers", str(workers), "--role", role, "--log-level", "WARNING"
    )
    env = service_load.service_env(fakes)
    url = f"http://127.0.0.1:{port}"
    return start(name, command, home, env, url), url


def effects(fakes: str) -> int:
    import json

    return int(json.loads(get(f"{fakes}/stats"))["effects"])


def measure(listener: str, fakes: str, count: int, limit: float) -> tuple[float, int, int]:
    """(events/s end to end, webhooks not acknowledged, effects seen)."""
    with urllib.request.urlopen(urllib.request.Request(f"{fakes}/reset", data=b"", method="POST"), timeout=5):
        pass
    url = f"{listener}/webhooks"
    requests = loadgen.prepared(url, count)

    async def drive() -> tuple[float, int]:
        started = time.perf_counter()
        sending = asyncio.create_task(loadgen.closed_loop(url, requests, 50, timeout=limit))
        done_in = float("inf")
        while time.perf_counter() - started < limit:
            await asyncio.sleep(0.05)
            if await asyncio.to_thread(effects, fakes) >= count:
                done_in = time.perf_counter() - started
                break
        sent = await sending
        return done_in, count - sent.ok

    done_in, refused = asyncio.run(drive())
    return count / done_in, refused, effects(fakes)


@contextlib.contextmanager
def schema(server: str) -> Iterator[str]:
    """A fresh schema on the server; yields a store URL whose search_path is that schema."""
    import psycopg

    name = f"wlmap_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="webhooks per configuration")
    parser.add_argument("--workers", type=int, default=16, help="concurrent runs per worker process")
    parser.add_argument("--processes", default="1,2,3", help="worker process counts to measure")
    parser.add_argument("--store", default=os.environ.get("WLMAP_TEST_POSTGRES") or DEFAULT_POSTGRES)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds each fake answer takes")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds one configuration may take")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",") if n.strip()]

    home = Path(tempfile.mkdtemp(prefix="wlmap-scale-"))
    (home / "mappings").mkdir()
    (home / "mappings" / "bench.yaml").write_text(MAPPING)
    figures: dict[str, tuple[float, int, int]] = {}
    began = time.perf_counter()
    with processes() as running:
        fake = start("fakes", [sys.executable, str(BENCH / "fakes.py"), "--latency", str(args.latency)], home, {}, None)
        running.append(fake)
        fakes = fake.log.read_text().split()[1]

        process, url = wlmap(home, fakes, str(home / "wlmap.db"), "all", args.workers, "sqlite")
        running.append(process)
        figures["sqlite"] = measure(url, fakes, args.events, args.limit)
        process.stop()

        for count in counts:
            with schema(args.store) as store, processes() as group:
                listener, url = wlmap(home, fakes, store, "listener", args.workers, f"pg{count}-listener")
                group.append(listener)
                for n in range(count):
                    group.append(wlmap(home, fakes, store, "worker", args.workers, f"pg{count}-worker{n}")[0])
                figures[f"postgres/{count}"] = measure(url, fakes, args.events, args.limit)

    base = figures["sqlite"][0]
    one = figures.get("postgres/1", (0.0, 0, 0))[0]
    print(
        f"end-to-end events/s, {args.events} signed webhooks each, fakes answering after "
        f"{args.latency * 1000:g} ms, {args.workers} concurrent runs per worker process, "
        f"{os.cpu_count()} cores; {time.perf_counter() - began:.0f} s in all"
    )
    print(f"{'configuration':<34}{'events/s':>10}{'vs sqlite':>11}{'vs 1 worker':>13}{'refused':>9}{'effects':>9}")
    for name, (rate, refused, seen) in figures.items():
        workers = name.partition("/")[2]
        label = (
            "sqlite: 1 process (all)"
            if name == "sqlite"
            else (f"postgres: 1 listener + {workers} worker{'' if workers == '1' else 's'}")
        )
        versus_one = f"{rate / one:.2f}x" if one and name != "sqlite" else "-"
        print(f"{label:<34}{rate:>10.0f}{rate / base:>10.2f}x{versus_one:>13}{refused:>9}{seen:>9}")
    print(f"(logs in {home})")


if __name__ == "__main__":
    main()
