"""Buckets and schedules in both stores, on a fake clock: placing, each closing rule, limits, exactly once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
import test_store
from test_store import Backend, FakeClock, delivery

from mapper.language.cron import Cron
from mapper.service.store import FencedOut, NewItem, NewJob, Rules, Store, StoreError

backend, clock, store = test_store.backend, test_store.clock, test_store.store  # the store tests' fixtures

WORDS = {
    "count": "count: 3 items",
    "window": "window: 1m after the first item",
    "idle": "idle: no item for 10s",
    "at": "at: 0 0 * * *",
    "max_items": "limit: 4 items in one bucket",
    "max_open": "limit: 2 open buckets",
}


def item(group: str, n: int, rules: Rules, distinct: str | None = None, mapping: str = "m") -> NewItem:
    return NewItem(mapping, "m.yaml", json.dumps(group), json.dumps({"n": n}), distinct, rules)


def put(store: Store, n: int, it: NewItem) -> int:
    """Ingest webhook `n` carrying the item; the bucket it went into."""
    done = store.ingest(delivery(f"w{n}"), [NewJob(it.mapping, None, "m.yaml", item=it)], dedupe_window=300)
    assert done.jobs == () and len(done.buckets) == 1
    return done.buckets[0]


def contents(store: Store, bucket: int) -> list[int]:
    return [entry.value["n"] for entry in store.bucket(bucket).items]


def never(mapping: str, group: object, items: list[object]) -> str | None:
    return None


def test_count_closes_the_bucket_with_its_job_in_the_same_transaction(store: Store) -> None:
    rules = Rules(count=3, words=WORDS)
    first = [put(store, n, item("A", n, rules)) for n in range(3)]
    assert len(set(first)) == 1
    closed = store.bucket(first[0]).bucket
    assert (closed.status, closed.reason, closed.items) == ("closed", "count: 3 items", 3)
    [job] = store.claim(10, 60)
    assert job.job == closed.job and job.delivery == closed.delivery and job.delivery_id == f"bucket-{first[0]}"
    assert store.bucket_for(job.delivery) is not None and contents(store, first[0]) == [0, 1, 2]
    assert put(store, 3, item("A", 3, rules)) != first[0]  # the next item opens the group's next bucket


def test_groups_get_buckets_of_their_own(store: Store) -> None:
    rules = Rules(count=2, words=WORDS)
    buckets = {g: {put(store, n, item(g, n, rules)) for n in range(k, k + 2)} for k, g in ((0, "A"), (2, "B"))}
    assert all(len(found) == 1 for found in buckets.values()) and buckets["A"] != buckets["B"]
    assert contents(store, buckets["B"].pop()) == [2, 3]


def test_window_idle_and_at_close_when_due(store: Store, clock: FakeClock) -> None:
    at = Cron("0 0 * * *").next_after(clock())
    window, idle = Rules(window=60, words=WORDS), Rules(idle=10, window=60, words=WORDS)
    midnight = Rules(at=at, window=10 * 86400, words=WORDS)
    w, i, m = (
        put(store, 0, item("W", 0, window)),
        put(store, 1, item("I", 1, idle)),
        put(store, 2, item("M", 2, midnight)),
    )
    clock.advance(9)
    put(store, 3, item("I", 3, idle))  # idle moves on with each item
    clock.advance(9)
    assert store.close_due(10, never) == []
    clock.advance(2)  # 20 s: 10 s after the last item of I
    [first] = store.close_due(10, never)
    assert store.bucket(i).bucket.reason == "idle: no item for 10s" and store.bucket(i).bucket.job == first
    clock.advance(40)
    store.close_due(10, never)
    assert store.bucket(w).bucket.reason == "window: 1m after the first item"
    clock.now = at - 1
    assert store.close_due(10, never) == [] and store.bucket(m).bucket.status == "open"
    clock.now = at
    assert len(store.close_due(10, never)) == 1 and store.bucket(m).bucket.reason == "at: 0 0 * * *"


def test_until_is_checked_over_the_items_and_distinct_keys_replace_in_place(store: Store) -> None:
    rules = Rules(until=True, words=WORDS)
    seen: list[list[int]] = []

    def until(mapping: str, group: object, items: list[dict[str, int]]) -> str | None:
        seen.append([entry["n"] for entry in items])
        return "until: three sessions" if len(items) >= 3 else None

    bucket = put(store, 0, item("A", 0, rules, distinct='"S1"'))
    put(store, 1, item("A", 1, rules, distinct='"S2"'))
    put(store, 2, item("A", 2, rules, distinct='"S1"'))  # S1 again: replaces item 0 in its place
    assert store.close_due(10, until) == [] and seen == [[2, 1]]
    assert store.close_due(10, until) == [] and seen == [[2, 1]]  # checked once per change, not on every look
    put(store, 3, item("A", 3, rules, distinct='"S3"'))
    [job] = store.close_due(10, until)
    assert store.bucket(bucket).bucket.reason == "until: three sessions" and contents(store, bucket) == [2, 1, 3]
    assert store.bucket(bucket).bucket.job == job


def test_limits_close_early_with_the_limit_as_reason(store: Store) -> None:
    rules = Rules(max_items=4, max_open=2, words=WORDS)
    full = [put(store, n, item("A", n, rules)) for n in range(4)]
    assert store.bucket(full[0]).bucket.reason == "limit: 4 items in one bucket"
    b, c = put(store, 10, item("B", 10, rules)), put(store, 11, item("C", 11, rules))
    assert store.bucket(b).bucket.status == "open"
    put(store, 12, item("D", 12, rules))  # a third open bucket: the oldest (B) closes to make room
    assert store.bucket(b).bucket.reason == "limit: 2 open buckets" and store.bucket(c).bucket.status == "open"
    assert len(store.buckets(status="open")) == 2


def test_a_delivery_is_collected_once_and_a_fenced_out_collect_job_keeps_nothing(
    store: Store, clock: FakeClock
) -> None:
    store.ingest(delivery("q1"), [NewJob("m", None, "m.yaml")], dedupe_window=300)
    [job] = store.claim(1, 10)
    clock.advance(11)
    [again] = store.claim(1, 10)  # the lease ran out: another worker has it
    it = item("A", 1, Rules(words=WORDS))
    with pytest.raises(FencedOut):
        store.collect(job.job, job.token, job.delivery, it, "{}")
    assert store.buckets() == []
    placed = store.collect(again.job, again.token, again.delivery, it, "{}")
    assert store.job(again.job).job.status == "done"
    assert store.job(again.job).job.last_reason == f"collected into bucket {placed.bucket}"
    replayed = store.replay(again.job, 60)
    twice = store.collect(replayed.job, replayed.token, replayed.delivery, it, "{}")
    assert twice.already and twice.bucket == placed.bucket and store.bucket(placed.bucket).bucket.items == 1
    assert store.job(replayed.job).job.status == "skipped"


def test_an_operator_closes_a_bucket_once(store: Store) -> None:
    bucket = put(store, 0, item("A", 0, Rules(words=WORDS)))
    job = store.close_bucket(bucket, "closed by an operator")
    assert store.bucket(bucket).bucket.job == job
    with pytest.raises(StoreError, match=f"bucket {bucket} is closed already"):
        store.close_bucket(bucket, "closed by an operator")


# --------------------------------------------------------------------------------------------- schedules

DAILY = Cron("0 2 * * *")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def fire(store: Store, missed: str = "run_once", cron: Cron = DAILY) -> object:
    return store.fire_schedule("nightly", "n.yaml", str(cron), cron.next_after, cron.previous, missed)  # type: ignore[arg-type]


def test_a_schedule_fires_each_due_time_once_and_a_missed_one_once_on_start(store: Store, clock: FakeClock) -> None:
    clock.now = at("2024-05-01T10:00:00")
    first = fire(store)
    assert first.job is None and first.next_due == at("2024-05-02T02:00:00")  # type: ignore[attr-defined]
    clock.now = at("2024-05-02T02:00:01")
    fired = fire(store)
    assert fired.job is not None and fire(store).job is None  # type: ignore[attr-defined]
    run = store.scheduled_run(fired.run.delivery)  # type: ignore[attr-defined]
    assert run is not None and (run.since, run.until, run.missed) == (
        at("2024-05-01T02:00:00"),
        at("2024-05-02T02:00:00"),
        0,
    )
    clock.now = at("2024-05-05T09:00:00")  # down for three due times
    late = fire(store)
    assert late.run.missed == 3 and late.run.since == at("2024-05-02T02:00:00")  # type: ignore[attr-defined]
    assert late.run.until == at("2024-05-05T02:00:00") and late.next_due == at("2024-05-06T02:00:00")  # type: ignore[attr-defined]
    assert len(store.claim(10, 60)) == 2


def test_missed_runs_can_be_skipped(store: Store, clock: FakeClock) -> None:
    clock.now = at("2024-05-01T10:00:00")
    fire(store, "skip")
    clock.now = at("2024-05-03T03:00:00")
    skipped = fire(store, "skip")
    assert skipped.job is None and skipped.skipped == 2  # type: ignore[attr-defined]
    clock.now = at("2024-05-04T02:00:05")
    assert fire(store, "skip").job is not None  # type: ignore[attr-defined]


def test_replicas_fire_a_due_time_once(backend: Backend, clock: FakeClock) -> None:
    clock.now = at("2024-05-01T10:00:00")
    stores = [backend.open(clock) for _ in range(4)]
    fire(stores[0])
    clock.now = at("2024-05-02T02:00:00")
    results: list[object] = []
    barrier = threading.Barrier(len(stores))

    def look(store: Store) -> None:
        barrier.wait()
        results.append(fire(store))

    threads = [threading.Thread(target=look, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.job is not None for r in results) == 1  # type: ignore[attr-defined]
    assert backend.query("SELECT COUNT(*) FROM schedule_runs") == [(1,)]
