"""How soon an idle worker starts a job another process stored (PostgreSQL split roles): LISTEN/NOTIFY vs polling.

    python bench/pg_idle_latency.py [--jobs 40] [--poll 0.5] [--store postgresql://...]

One PostgresStore stands for a `--role listener` process and ingests one webhook at a time; another, with a
Worker polling every --poll seconds (the service's default 0.5), stands for a `--role worker` process. Between
webhooks the worker is idle for a random 0.1-0.6 s (so the webhooks do not fall in step with the poll).
Measured: from the moment the listener's ingest has committed until the worker's run function starts. Both
modes run in the same process, one after the other, each on a fresh schema (dropped afterwards):

- poll:   the worker finds new jobs only at its next poll (what split roles did before);
- notify: as the service runs now: the ingest sends NOTIFY, the worker's store LISTENs and wakes it.

The database comes from --store, else $WLMAP_TEST_POSTGRES, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import psycopg  # noqa: E402

from mapper.events import Event  # noqa: E402
from mapper.language import loader  # noqa: E402
from mapper.language.plan import Plan  # noqa: E402
from mapper.run.outcome import RunResult  # noqa: E402
from mapper.service.store import NewDelivery, NewJob  # noqa: E402
from mapper.service.store.postgres import PostgresStore  # noqa: E402
from mapper.service.worker import Worker, WorkerOptions  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MAPPING = """
version: 1
name: idle
trigger:
  topics: [scenario_session/completed]
connections:
  target:
    base_url: "https://target.example"
steps:
  - name: post
    connection: target
    method: POST
    path: /things
"""


def with_schema(server: str, schema: str) -> str:
    return f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{schema}"


async def measure(server: str, jobs: int, poll: float, notify: bool, seed: int) -> list[float]:
    """Seconds from commit to run start, one per job."""
    schema = f"wlmap_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    listener = PostgresStore(with_schema(server, schema))
    worker_store = PostgresStore(with_schema(server, schema))
    plan, _ = loader.load_text(MAPPING, "idle.yaml")
    assert plan is not None
    started: asyncio.Queue[float] = asyncio.Queue()

    async def run(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        started.put_nowait(time.perf_counter())
        return RunResult(plan.name, "done", "every step succeeded")

    worker = Worker(worker_store, lambda: {plan.name: plan}, run, WorkerOptions(poll=poll))
    loop = asyncio.get_running_loop()
    stop = worker_store.watch(lambda: loop.call_soon_threadsafe(worker.wake)) if notify else (lambda: None)
    serving = asyncio.create_task(worker.serve())
    chance = random.Random(seed)
    latencies = []
    try:
        await asyncio.sleep(1.0)
        for n in range(jobs):
            await asyncio.sleep(chance.uniform(0.1, 0.6))  # idle
            body = f'{{"data": {{"id": "R{n}"}}}}'.encode()
            webhook = NewDelivery((("x-scope-topic", "scenario_session/completed"),), body, "sha", f"e{n}", f"id:e{n}")
            await asyncio.to_thread(listener.ingest, webhook, [NewJob(plan.name, f"R{n}")], dedupe_window=300)
            committed = time.perf_counter()
            latencies.append(await asyncio.wait_for(started.get(), 10 * poll + 5) - committed)
    finally:
        worker.stop()
        await serving
        stop()
        listener.close()
        worker_store.close()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
    return latencies


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    return (
        f"median {statistics.median(ordered) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   "
        f"max {ordered[-1] * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--store", default=os.environ.get("WLMAP_TEST_POSTGRES") or DEFAULT_POSTGRES)
    args = parser.parse_args()
    seed = random.randrange(1 << 30)
    polled = asyncio.run(measure(args.store, args.jobs, args.poll, notify=False, seed=seed))
    notified = asyncio.run(measure(args.store, args.jobs, args.poll, notify=True, seed=seed))
    print(f"idle worker, {args.jobs} jobs one at a time, poll {args.poll:g} s (seed {seed}):")
    print(f"  poll only       {summary(polled)}")
    print(f"  LISTEN/NOTIFY   {summary(notified)}")
    print(f"  median ratio notify/poll: {statistics.median(notified) / statistics.median(polled):.3f}x")


if __name__ == "__main__":
    main()
