"""Collecting mappings through the real listener, store and workers: every acknowledged event in exactly one
bucket, each closing rule, each limit, kill -9 while collecting and closing (SQLite here, PostgreSQL in
test_postgres_buckets.py)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_bucket_support import BatchTarget, collecting_service, event_body, post
from test_service_support import Service


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
    limited = "  group_by: order\n  close:\n    window: 1d\n  limits:\n    items: 3\n    open_buckets: 2\n    item_bytes: 200\n"
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
