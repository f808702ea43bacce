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
