"""Collecting mappings through the real listener, store and workers: every acknowledged event in exactly one
bucket, each closing rule, each limit, kill -9 while collecting and closing (SQLite here, PostgreSQL in
test_postgres_buckets.py)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from test_bucket_support import BatchTarget, collecting_service, event_body, post
from test_service_support import SenderThreads, Service, signed_headers


@pytest.fixture
def target() -> Iterator[BatchTarget]:
    with BatchTarget().running() as running:
        yield running


def wait_for(condition: object, service: Service, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out:\n{service.tail()}")
        time.sleep(0.05)


def items_by_bucket(service: Service) -> dict[int, list[int]]:
    """The store's buckets and the deliveries of their items, in order."""
    found: dict[int, list[int]] = {}
    for bucket, source in service.query("SELECT bucket, source FROM bucket_items ORDER BY bucket, position"):
        found.setdefault(bucket, []).append(source)
    return found


def test_items_from_many_concurrent_webhooks_land_in_the_right_buckets(tmp_path: Path, target: BatchTarget) -> None:
    service = collecting_service(tmp_path, target, "  group_by: order\n  close:\n    count: 5\n")
    orders = [f"WO-{k}" for k in range(4)]
    sent: dict[str, tuple[str, int]] = {}  # delivery → (order, n)
    try:
        service.start()

        def send(n: int) -> httpx.Response:
            order = orders[n % len(orders)]
            sent[f"d{n}"] = (order, n)
            with httpx.Client(timeout=10) as client:
                return post(client, service, event_body(n, order), f"d{n}")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(40)))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert all(len(a.json()["buckets"]) == 1 and a.json()["jobs"] == [] for a in answers)
        wait_for(lambda: len(target.batches) == 8, service)
        service.drain()
        assert service.terminate() == 0
    finally:
        service.close()
    batches = target.by_bucket()
    assert sorted(len(b.ns) for b in batches.values()) == [5] * 8
    for batch in batches.values():
        assert batch.reason == "count: 5 items"
        assert {sent[f"d{n}"][0] for n in batch.ns} == {batch.group}  # every item in its own order's bucket
    assert sorted(n for b in batches.values() for n in b.ns) == list(range(40))  # each event exactly once


def test_each_closing_rule(tmp_path: Path, target: BatchTarget) -> None:
    mappings = {
        "by-count": "  close:\n    count: 3\n",
        "by-window": "  close:\n    window: 2s\n",
        "by-idle": "  close:\n    idle: 1s\n",
        "by-until": "  group_by: order\n  distinct_by: session\n  close:\n"
        "    until: length(items) >= items[0].expected\n",
    }
    service = collecting_service(tmp_path, target, mappings)
    sessions = ["S1", "S2", "S1", "S3"]  # S1 twice: `distinct_by` keeps it once, in its place, with its newest values
    try:
        service.start()
        with httpx.Client(timeout=10) as client:
            for n, session in enumerate(sessions):
                answer = post(client, service, event_body(n, "A", session, expected=3), f"d{n}")
                assert answer.status_code == 200 and len(answer.json()["buckets"]) == 4, answer.text
        wait_for(lambda: len(target.batches) == 4, service)
        service.drain()
        still_open = service.query("SELECT mapping, items FROM buckets WHERE status = 'open'")
        assert service.terminate() == 0
    finally:
        service.close()
    runs = {b.mapping: b for b in target.batches.values()}
    assert (runs["by-count"].ns, runs["by-count"].reason) == ([0, 1, 2], "count: 3 items")
    assert (runs["by-window"].ns, runs["by-window"].reason) == ([0, 1, 2, 3], "window: 2s after the first item")
    assert (runs["by-idle"].ns, runs["by-idle"].reason) == ([0, 1, 2, 3], "idle: no item for 1s")
    until = runs["by-until"]
    assert (until.ns, until.reason, until.group) == ([2, 1, 3], "until: length(items) >= items[0].expected", "A")
    assert still_open == [("by-count", 1)]


def test_limits_close_early_or_park_the_event(tmp_path: Path, target: BatchTarget) -> None:
    limited = (
        "  group_by: order\n  close:\n    window: 1d\n  limits:\n    items: 3\n    open_buckets: 2\n"
        "    item_bytes: 200\n"
    )
    service = collecting_service(tmp_path, target, limited)
    try:
        service.start()
        with httpx.Client(timeout=10) as client:
            for n, order in enumerate(["A", "A", "A", "B", "C", "D", "E" * 300]):
                assert post(client, service, event_body(n, order), f"d{n}").status_code == 200
        wait_for(lambda: len(target.batches) == 2, service)
        service.drain()
        dead = service.query("SELECT status, last_reason FROM jobs WHERE status = 'dead'")
        still_open = service.query("SELECT group_key FROM buckets WHERE status = 'open' ORDER BY id")
        assert service.terminate() == 0
    finally:
        service.close()
    runs = {b.group: b for b in target.batches.values()}
    assert runs["A"].ns == [0, 1, 2] and runs["A"].reason.startswith("limit: 3 items in one bucket")
    assert runs["B"].ns == [3] and runs["B"].reason.startswith("limit: 2 open buckets of this mapping")
    assert still_open == [('"C"',), ('"D"',)]
    [(_, reason)] = dead
    assert "more than the 200 one item may take (collect > limits > item_bytes)" in reason


def test_items_that_need_the_query_are_collected_by_their_jobs(tmp_path: Path, target: BatchTarget) -> None:
    service = collecting_service(tmp_path, target, {"queried": "  close:\n    count: 2\n"}, queried=("queried",))
    for n in range(4):
        target.nodes[f"S{n}"] = {"n": 10 + n, "order": "A"}
    try:
        service.start()
        with httpx.Client(timeout=10) as client:
            for n in range(4):
                answer = post(client, service, event_body(n, "A"), f"d{n}")
                assert answer.json()["jobs"] and "buckets" not in answer.json()  # the item waits for its query
        wait_for(lambda: len(target.batches) == 2, service)
        service.drain()
        reasons = service.query("SELECT last_reason FROM jobs ORDER BY id")
        assert service.terminate() == 0
    finally:
        service.close()
    # Collect jobs run side by side: items go in as their queries answer, each exactly once.
    assert sorted(len(b.ns) for b in target.batches.values()) == [2, 2]
    assert sorted(n for b in target.batches.values() for n in b.ns) == [10, 11, 12, 13]
    collected = [r for (r,) in reasons if r.startswith("collected into bucket")]
    assert len(collected) == 4 and sum(r == "every step succeeded" for (r,) in reasons) == 2


# ------------------------------------------------------------------------------------------------ kill -9

KILL_RULES = "  group_by: order\n  close:\n    count: 5\n    window: 1s\n"


class Senders(SenderThreads):
    """Threads posting new events (order by turn, a unique n each), each re-sent until acknowledged."""

    def __init__(self, urls: Callable[[], list[str]], threads: int = 3) -> None:
        self.urls = urls
        self.acknowledged: dict[str, int] = {}  # delivery id → n
        self.sent: dict[str, int] = {}
        super().__init__(threads)

    def _send(self, k: int) -> None:
        with httpx.Client(timeout=5) as client:
            i = 0
            while not self.stopping.is_set():
                n = k * 100_000 + i
                delivery, body = f"s{k}-{i}", event_body(n, f"WO-{i % 3}", f"S{n}")
                with self.lock:
                    self.sent[delivery] = n
                turn = k
                while not self.stopping.is_set():
                    urls = self.urls()
                    turn += 1
                    try:
                        answer = client.post(
                            f"{urls[turn % len(urls)]}/webhooks", content=body, headers=signed_headers(body, delivery)
                        )
                    except httpx.HTTPError:
                        time.sleep(0.02)
                        continue
                    if answer.status_code == 200:
                        with self.lock:
                            self.acknowledged[delivery] = n
                        break
                    assert answer.status_code == 503, answer.text
                    time.sleep(0.05)
                i += 1
                time.sleep(0.02)


def settle(service: Service, timeout: float = 60.0) -> None:
    """Until every bucket is closed and every job has run."""
    deadline = time.monotonic() + timeout
    while service.query("SELECT COUNT(*) FROM buckets WHERE status = 'open'")[0][0] or service.active_jobs():
        if time.monotonic() > deadline:
            raise AssertionError(f"buckets or jobs still active:\n{service.tail()}")
        time.sleep(0.1)


def assert_every_item_once(service: Service, target: BatchTarget, senders: Senders, context: str) -> None:
    """Every acknowledged event in exactly one bucket of each mapping; every bucket run exactly once."""
    rows = {d: r for r, d in service.query("SELECT id, delivery_id FROM deliveries WHERE status <> 'duplicate'")}
    for mapping in ("placed", "queried"):
        sources = [s for (s,) in service.query(f"SELECT source FROM bucket_sources WHERE mapping = '{mapping}'")]
        assert sorted(sources) == sorted(rows[d] for d in senders.acknowledged), (mapping, context)
        stored = {
            b: sorted(
                json.loads(v)["n"] for (v,) in service.query(f"SELECT value FROM bucket_items WHERE bucket = {b}")
            )
            for (b,) in service.query(f"SELECT id FROM buckets WHERE mapping = '{mapping}'")
        }
        runs = target.by_bucket(mapping)
        assert set(runs) == set(stored), (mapping, context)  # every bucket ran...
        assert all(sorted(runs[b].ns) == stored[b] for b in stored), (mapping, context)  # ...with its items
        assert sorted(n for b in runs.values() for n in b.ns) == sorted(senders.acknowledged.values()), context
    jobs = service.query("SELECT b.id, COUNT(j.id) FROM buckets b JOIN jobs j ON j.delivery = b.delivery GROUP BY b.id")
    assert all(count == 1 for _, count in jobs), context  # one job per bucket: never closed twice
    keys: dict[int, set[str]] = {}
    with target.lock:
        for batch in target.batches.values():
            keys.setdefault(batch.bucket, set()).add(batch.key)
    assert all(len(found) == 1 for found in keys.values()), context  # one effect per bucket
    assert service.query("SELECT DISTINCT status FROM jobs") == [("done",)], context


@pytest.mark.slow
def test_kill_9_while_collecting_and_closing_loses_no_item_and_runs_no_bucket_twice(
    tmp_path: Path, target: BatchTarget
) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    service = collecting_service(tmp_path, target, {"placed": KILL_RULES, "queried": KILL_RULES}, queried=("queried",))
    target.nodes.update({f"S{k * 100_000 + i}": {"n": k * 100_000 + i} for k in range(3) for i in range(5000)})
    checks = []
    try:
        service.start()
        with Senders(lambda: [service.url]) as senders:
            end = time.monotonic() + 15.0
            while time.monotonic() < end:
                time.sleep(chance.uniform(0.3, 1.5))
                service.kill()
                checks.append(integrity(service.store))
                service.start()
        settle(service)
        assert service.terminate() == 0
    finally:
        service.close()
    context = (
        f"seed {seed}, {service.starts - 1} kills, {len(senders.acknowledged)} acknowledged of {len(senders.sent)}"
    )
    print(context)
    assert service.starts >= 6 and all(check == "ok" for check in checks), (checks, context)
    assert len(senders.acknowledged) > 100, context
    assert_every_item_once(service, target, senders, context)


def integrity(store: Path) -> str:
    with contextlib.closing(sqlite3.connect(store, timeout=10)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
