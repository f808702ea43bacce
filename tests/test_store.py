"""The store's state machine, run against every implementation (a real database, a fake clock).

Every test taking `store` or `backend` runs as [sqlite] (a file in tmp_path) and [postgres] (a schema of its
own on the server named by WLMAP_TEST_POSTGRES; skipped without one, failed under CI: see conftest.py). To add
an implementation, add its name to IMPLEMENTATIONS and a branch to `backend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mapper.service.store import (
    Claimed,
    Cuts,
    Finish,
    NewDelivery,
    NewJob,
    NotFound,
    NotReplayable,
    Pruned,
    Store,
    StoreError,
    StoreUnavailable,
    holders,
    open_store,
)
from mapper.service.store.migrations import MIGRATIONS, Migration
from mapper.service.store.sqlite import SqliteStore
from mapper.service.store.turns import Turn

IMPLEMENTATIONS = ["sqlite", "postgres"]
WINDOW = 300.0
DAY = 86400.0


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Backend:
    """One database of one implementation: open stores on it, look at its tables directly."""

    def __init__(self, name: str, open_store: Callable[..., Store], query: Callable[[str], list[Any]]) -> None:
        self.name, self._open, self.query = name, open_store, query
        self.opened: list[Store] = []

    def open(self, clock: FakeClock | None = None, migrations: Sequence[Migration] = MIGRATIONS) -> Store:
        options: dict[str, Any] = (
            {"migrations": migrations} if clock is None else {"clock": clock, "migrations": migrations}
        )
        store = self._open(**options)
        self.opened.append(store)
        return store


@pytest.fixture(params=IMPLEMENTATIONS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "wlmap.db"

        def query(text: str) -> list[Any]:
            with sqlite3.connect(path) as conn:
                return conn.execute(text).fetchall()

        made = Backend("sqlite", lambda **kw: SqliteStore(path, **kw), query)
    elif request.param == "postgres":
        from mapper.service.store.postgres import PostgresStore

        database = request.getfixturevalue("postgres")
        made = Backend("postgres", lambda **kw: PostgresStore(database.url, **kw), database.query)
    else:  # pragma: no cover - a future implementation
        raise AssertionError(request.param)
    yield made
    for opened in made.opened:
        opened.close()


@pytest.fixture
def store(backend: Backend, clock: FakeClock) -> Store:
    return backend.open(clock)


def delivery(
    delivery_id: str | None = "id-1", body: bytes = b'{"data": {"id": "R1"}}', topic: str = "scenario_session/completed"
) -> NewDelivery:
    digest = hashlib.sha256(body).hexdigest()
    body_key = hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()
    key = f"id:{delivery_id}" if delivery_id else f"sha256:{body_key}"
    headers = (("x-scope-topic", topic), ("x-scope-webhook-id", delivery_id or ""))
    return NewDelivery(headers, body, digest, delivery_id, key, summary=f"{topic} R1")


def ingest(store: Store, delivery_id: str | None, *jobs: tuple[str, str | None]) -> list[int]:
    """Ingest a delivery with a unique body; returns the job ids."""
    body = f'{{"n": "{delivery_id}"}}'.encode()
    result = store.ingest(
        delivery(delivery_id, body), [NewJob(m, r, f"{m}.yaml") for m, r in jobs], dedupe_window=WINDOW
    )
    assert result.status == ("accepted" if jobs else "ignored")
    return list(result.jobs)


def claim_ids(store: Store, limit: int = 10, lease: float = 30.0) -> list[int]:
    return [c.job for c in store.claim(limit, lease)]


def done(store: Store, claimed: Claimed) -> bool:
    return store.finish(claimed.job, claimed.token, Finish("done", "every step succeeded"))


# ------------------------------------------------------------------------------------------------ ingest


def test_ingest_stores_delivery_and_jobs_that_claim_returns_with_the_raw_webhook(store: Store) -> None:
    result = store.ingest(
        delivery("abc"), [NewJob("m1", "R1", "m1.yaml"), NewJob("m2", "R1", "m2.yaml")], dedupe_window=WINDOW
    )
    assert result.status == "accepted" and len(result.jobs) == 2 and result.coalesced == ()
    assert store.counts() == {"pending": 2, "running": 0, "retry": 0, "dead": 0}
    claimed = store.claim(10, 30.0)
    assert [c.mapping for c in claimed] == ["m1", "m2"]
    first = claimed[0]
    assert first.body == b'{"data": {"id": "R1"}}'
    assert ("x-scope-webhook-id", "abc") in first.headers
    assert first.attempt == 1 and first.token == 1 and first.delivery_id == "abc"
    assert first.idempotency_key == f"wlmap-job-{first.job}"
    assert store.counts()["running"] == 2


def test_an_event_no_mapping_wants_is_stored_as_ignored(store: Store) -> None:
    result = store.ingest(delivery("nobody"), [], dedupe_window=WINDOW)
    assert result.status == "ignored" and result.jobs == ()
    [row] = store.deliveries(statuses=["ignored"])
    assert row.id == result.delivery and row.delivery_id == "nobody" and row.body.startswith(b"{")
    assert store.claim(10, 30.0) == []


def test_same_delivery_id_is_a_duplicate_long_after_the_window(store: Store, clock: FakeClock) -> None:
    first = store.ingest(delivery("dup"), [NewJob("m", "R1")], dedupe_window=WINDOW)
    clock.advance(6 * DAY)
    again = store.ingest(delivery("dup"), [NewJob("m", "R1")], dedupe_window=WINDOW)
    assert again.status == "duplicate" and again.duplicate_of == first.delivery and again.jobs == ()
    assert len(store.jobs()) == 1
    duplicate = store.delivery(again.delivery)
    assert duplicate.status == "duplicate" and duplicate.body == b""


def test_without_an_id_the_same_body_is_a_duplicate_only_within_the_window(store: Store, clock: FakeClock) -> None:
    assert store.ingest(delivery(None), [NewJob("m", "R1")], dedupe_window=WINDOW).status == "accepted"
    clock.advance(WINDOW - 1)
    assert store.ingest(delivery(None), [NewJob("m", "R1")], dedupe_window=WINDOW).status == "duplicate"
    clock.advance(2)  # the window counts from the first copy: a later identical payload is a new change
    assert store.ingest(delivery(None), [NewJob("m", "R1")], dedupe_window=WINDOW).status == "accepted"


def test_same_body_under_another_topic_is_not_a_duplicate(store: Store) -> None:
    store.ingest(delivery(None, topic="scenario_session/created"), [NewJob("m", "R1")], dedupe_window=WINDOW)
    other = store.ingest(delivery(None, topic="scenario_session/completed"), [NewJob("m", "R1")], dedupe_window=WINDOW)
    assert other.status == "accepted"


def test_concurrent_copies_of_one_delivery_make_exactly_one_job(store: Store) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def post() -> None:
        outcome = store.ingest(delivery("same"), [NewJob("m", "R1")], dedupe_window=WINDOW)
        with lock:
            results.append(outcome.status)

    threads = [threading.Thread(target=post) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["accepted"] + ["duplicate"] * 39
    assert len(store.jobs()) == 1


# -------------------------------------------------------------------------------------------- coalescing


def test_a_newer_event_supersedes_a_pending_job_for_the_same_mapping_and_resource(store: Store) -> None:
    [old] = ingest(store, "e1", ("m", "R1"))
    [other_mapping] = ingest(store, "e2", ("other", "R1"))
    [other_resource] = ingest(store, "e3", ("m", "R2"))
    result = store.ingest(delivery("e4", b"{}"), [NewJob("m", "R1")], dedupe_window=WINDOW)
    assert result.coalesced == (old,)
    job = store.job(old).job
    assert job.status == "coalesced" and job.superseded_by == result.jobs[0]
    assert "newer event" in (job.last_reason or "")
    assert sorted(claim_ids(store)) == sorted([other_mapping, other_resource, result.jobs[0]])


def test_a_started_job_is_not_coalesced(store: Store) -> None:
    [first] = ingest(store, "e1", ("m", "R1"))
    assert claim_ids(store) == [first]
    result = store.ingest(delivery("e2", b"{}"), [NewJob("m", "R1")], dedupe_window=WINDOW)
    assert result.coalesced == ()
    assert store.job(first).job.status == "running"


def test_jobs_without_a_resource_are_never_coalesced_or_ordered(store: Store) -> None:
    a = ingest(store, "e1", ("m", None))
    b = ingest(store, "e2", ("m", None))
    assert sorted(claim_ids(store)) == sorted(a + b)


# ---------------------------------------------------------------------------------------------- ordering


def test_one_resource_runs_in_arrival_order_per_mapping_and_others_go_on(store: Store, clock: FakeClock) -> None:
    [first] = ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(10, 30.0)
    [second] = ingest(store, "e2", ("m", "R1"))
    [elsewhere] = ingest(store, "e3", ("m", "R2"))
    [other_mapping] = ingest(store, "e4", ("n", "R1"))
    others = store.claim(10, 30.0)
    assert sorted(c.job for c in others) == sorted([elsewhere, other_mapping])  # not `second`: R1 is busy
    for other in others:
        done(store, other)
    assert store.finish(claimed.job, claimed.token, Finish("retry", "target down", next_attempt_at=clock() + 60))
    assert claim_ids(store) == []  # waiting to retry still holds the resource
    clock.advance(61)
    [again] = store.claim(10, 30.0)
    assert again.job == first and again.attempt == 2
    done(store, again)
    assert claim_ids(store) == [second]


def test_a_dead_job_does_not_block_the_next_event_for_its_resource(store: Store) -> None:
    ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(10, 30.0)
    [second] = ingest(store, "e2", ("m", "R1"))
    store.finish(claimed.job, claimed.token, Finish("dead", "target answered 404", step="post"))
    assert claim_ids(store) == [second]


def test_claim_respects_the_limit_and_takes_the_oldest_first(store: Store) -> None:
    ids = [ingest(store, f"e{n}", ("m", f"R{n}"))[0] for n in range(5)]
    assert claim_ids(store, limit=2) == ids[:2]
    assert claim_ids(store, limit=0) == []
    assert claim_ids(store, limit=10) == ids[2:]


# ------------------------------------------------------------------------------------ leases and fencing


def test_an_expired_lease_is_reclaimed_and_the_old_owner_is_fenced_out(store: Store, clock: FakeClock) -> None:
    [job] = ingest(store, "e1", ("m", "R1"))
    [stale] = store.claim(10, 10.0)
    clock.advance(5)
    assert claim_ids(store) == []  # lease still held
    clock.advance(6)
    [fresh] = store.claim(10, 10.0)
    assert fresh.job == job and fresh.token == stale.token + 1 and fresh.attempt == 2
    assert not store.extend(stale.job, stale.token, 10.0)
    assert not store.finish(stale.job, stale.token, Finish("done", "late"))
    assert store.job(job).job.status == "running"
    assert store.extend(fresh.job, fresh.token, 10.0)
    assert store.finish(fresh.job, fresh.token, Finish("skipped", "nothing to do"))
    detail = store.job(job)
    assert detail.job.status == "skipped"
    first, second = detail.attempts
    assert first.status == "done" and "too late" in (first.reason or "")
    assert second.status == "skipped"


def test_a_lost_attempt_is_recorded_when_its_job_is_reclaimed(store: Store, clock: FakeClock) -> None:
    ingest(store, "e1", ("m", "R1"))
    [first] = store.claim(10, 10.0)
    clock.advance(11)
    [second] = store.claim(10, 10.0)
    attempts = store.job(first.job).attempts
    assert [a.status for a in attempts] == ["lost", "running"]
    assert "lease expired" in (attempts[0].reason or "")
    assert second.attempt == 2


def test_extend_keeps_the_job_from_being_reclaimed(store: Store, clock: FakeClock) -> None:
    ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(10, 10.0)
    clock.advance(8)
    assert store.extend(claimed.job, claimed.token, 10.0)
    clock.advance(8)
    assert claim_ids(store) == []


def test_a_job_cut_short_runs_again_alone_then_waits_then_is_parked_dead(store: Store, clock: FakeClock) -> None:
    [poison, other] = [ingest(store, f"e{n}", ("m", f"R{n}"))[0] for n in (1, 2)]
    assert claim_ids(store, lease=10.0) == [poison, other]
    [later] = ingest(store, "e3", ("m", "R1"))  # the same resource: waits for the poison job
    clock.advance(11)  # the process died with both running: each is cut once and runs again at once, alone
    [first] = store.claim(10, 10.0)
    assert (first.job, first.cuts, first.attempt) == (poison, 1, 2)
    [second] = store.claim(10, 10.0)
    assert (second.job, second.cuts) == (other, 1)
    assert done(store, second)
    clock.advance(11)  # cut again: now it waits a minute
    assert claim_ids(store) == []
    waiting = store.job(poison).job
    assert waiting.status == "retry" and waiting.next_attempt_at == clock() + 60
    assert "stopped (or stalled) 2 times while running this job; it runs again in 60 s" in (waiting.last_reason or "")
    clock.advance(60)
    [third] = store.claim(10, 10.0, Cuts(limit=3, waits=(0.0, 60.0)))
    assert (third.job, third.cuts, third.attempt) == (poison, 2, 3)
    clock.advance(11)
    assert claim_ids(store) == [later]  # the third cut parks it; the next event of its resource goes on
    parked = store.job(poison)
    assert parked.job.status == "dead"
    assert parked.job.last_reason == (
        "the process stopped 3 times while running this job; parked so that the others can run"
    )
    assert [a.status for a in parked.attempts] == ["lost", "lost", "lost"]


def test_a_cut_job_is_claimed_on_its_own_so_that_it_runs_alone(store: Store, clock: FakeClock) -> None:
    [cut, parked] = [ingest(store, f"e{n}", ("m", f"R{n}"))[0] for n in (1, 2)]
    store.claim(2, 10.0)
    clock.advance(11)
    fresh = [ingest(store, f"e{n}", ("m", f"R{n}"))[0] for n in (3, 4)]
    assert claim_ids(store) == [cut]
    one_cut = store.claim(10, 10.0, Cuts(limit=1))  # parks the other at once, then the fresh jobs go on
    assert [c.job for c in one_cut] == fresh
    assert store.job(parked).job.last_reason == (
        "the process stopped once while running this job; parked so that the others can run"
    )


def dead_holder() -> str:
    """The holder a process on this machine had, which has ended since."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    machine = holders.current().split("|")[:3]
    return "|".join([*machine, ended.stdout.strip(), "12345"])


def test_leases_of_a_holder_that_is_provably_gone_are_taken_back_at_once(backend: Backend, clock: FakeClock) -> None:
    store = backend.open(clock)
    [orphan, elsewhere, ours] = [ingest(store, f"e{n}", ("m", f"R{n}"))[0] for n in range(3)]
    assert claim_ids(store, lease=60.0) == [orphan, elsewhere, ours]
    assert backend.query(f"SELECT holder FROM jobs WHERE id = {ours}") == [(holders.current(),)]
    for job, holder in ((orphan, dead_holder()), (elsewhere, "another-host|boot|pid:[1]|1|1")):
        assert backend.query(f"UPDATE jobs SET holder = '{holder}' WHERE id = {job} RETURNING id") == [(job,)]
    assert store.reclaim() == [orphan]
    assert store.reclaim() == []
    [again] = store.claim(10, 60.0)  # long before its lease would have run out
    assert (again.job, again.attempt, again.cuts) == (orphan, 2, 1)
    assert [a.status for a in store.job(orphan).attempts] == ["lost", "running"]


def test_release_gives_the_job_back_at_once(store: Store) -> None:
    [job] = ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(10, 600.0)
    assert store.release(claimed.job, claimed.token)
    assert not store.release(claimed.job, claimed.token)
    [again] = store.claim(10, 600.0)
    assert again.job == job and again.attempt == 2
    assert [a.status for a in store.job(job).attempts] == ["released", "running"]


def test_a_retry_waits_until_its_time(store: Store, clock: FakeClock) -> None:
    ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(10, 30.0)
    store.finish(claimed.job, claimed.token, Finish("retry", "503", step="post", next_attempt_at=clock() + 5))
    assert store.counts()["retry"] == 1
    clock.advance(4.9)
    assert claim_ids(store) == []
    clock.advance(0.2)
    assert claim_ids(store) == [claimed.job]


def test_finish_checks_that_only_a_retry_has_a_next_attempt(store: Store) -> None:
    ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(10, 30.0)
    with pytest.raises(ValueError):
        store.finish(claimed.job, claimed.token, Finish("retry", "503"))
    with pytest.raises(ValueError):
        store.finish(claimed.job, claimed.token, Finish("done", "ok", next_attempt_at=1.0))


def test_attempts_keep_reason_step_and_trace(store: Store) -> None:
    ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(10, 30.0)
    trace = {"steps": [{"name": "post", "status": 503, "url": "https://target/***"}], "note": "ünïcode"}
    store.finish(claimed.job, claimed.token, Finish("dead", "x" * 5000, step="post", trace=trace))
    detail = store.job(claimed.job)
    [attempt] = detail.attempts
    assert attempt.trace == trace and attempt.step == "post" and attempt.finished_at is not None
    assert len(attempt.reason or "") == 2000 and len(detail.job.last_reason or "") == 2000
    assert detail.delivery.delivery_id == "e1"


# ------------------------------------------------------------------------------------------------ replays


def test_replay_makes_a_new_leased_job_for_the_same_webhook(store: Store) -> None:
    [job] = ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(10, 30.0)
    store.finish(claimed.job, claimed.token, Finish("dead", "404"))
    replayed = store.replay(job, 60.0, mapping_file="new/m.yaml")
    assert replayed.job != job and replayed.token == 1 and replayed.attempt == 1
    assert replayed.body == claimed.body and replayed.mapping_file == "new/m.yaml"
    old = store.job(job).job
    assert old.status == "replayed" and old.superseded_by == replayed.job
    assert store.job(replayed.job).job.replay_of == job
    assert claim_ids(store) == []  # the replay is running for its caller
    assert done(store, replayed)


def test_replay_refuses_unknown_and_unfinished_jobs(store: Store) -> None:
    [job] = ingest(store, "e1", ("m", "R1"))
    with pytest.raises(NotReplayable):
        store.replay(job, 60.0)
    with pytest.raises(NotFound):
        store.replay(999, 60.0)
    with pytest.raises(NotFound):
        store.job(999)
    with pytest.raises(NotFound):
        store.delivery(999)


def test_reroute_gives_an_ignored_delivery_the_jobs_mappings_now_want(store: Store) -> None:
    ignored = store.ingest(delivery("e1"), [], dedupe_window=WINDOW)
    [claimed] = store.reroute(ignored.delivery, [NewJob("m", "R1", "m.yaml")], 60.0)
    assert claimed.mapping == "m" and claimed.delivery == ignored.delivery
    assert store.delivery(ignored.delivery).status == "accepted"
    with pytest.raises(NotReplayable):
        store.reroute(ignored.delivery, [NewJob("m", "R1")], 60.0)


# ------------------------------------------------------------------------------------------- maintenance


def test_prune_removes_old_finished_deliveries_and_keeps_dead_and_active_ones(store: Store, clock: FakeClock) -> None:
    [finished] = ingest(store, "old-done", ("m", "R1"))
    [dead] = ingest(store, "old-dead", ("m", "R2"))
    [active] = ingest(store, "old-pending", ("m", "R3"))
    ingest(store, "old-ignored")
    store.ingest(delivery("old-done", b"{}"), [NewJob("m", "R1")], dedupe_window=WINDOW)  # a duplicate row
    by_job = {c.job: c for c in store.claim(2, 30.0)}
    done(store, by_job[finished])
    store.finish(dead, by_job[dead].token, Finish("dead", "404"))
    clock.advance(8 * DAY)
    [recent] = ingest(store, "new", ("m", "R9"))
    assert store.prune(clock() - 7 * DAY) == 3  # done, ignored, duplicate
    remaining = {job.id for job in store.jobs()}
    assert remaining == {dead, active, recent}
    assert {d.delivery_id for d in store.deliveries()} == {"old-dead", "old-pending", "new"}
    # The id is forgotten only now, more than 7 days on.
    assert store.ingest(delivery("old-done"), [NewJob("m", "R1")], dedupe_window=WINDOW).status == "accepted"


def test_prune_goes_job_by_job_and_takes_the_dead_only_when_asked(store: Store, clock: FakeClock) -> None:
    [done_job, dead_job] = ingest(store, "both", ("m", "R1"), ("n", "R1"))  # one webhook, two mappings
    [only_dead] = ingest(store, "dead-only", ("m", "R2"))
    by_job = {c.job: c for c in store.claim(10, 30.0)}
    done(store, by_job[done_job])
    for job in (dead_job, only_dead):
        store.finish(job, by_job[job].token, Finish("dead", "404"))
    clock.advance(8 * DAY)
    cutoff = clock() - 7 * DAY
    first = store.prune_events(cutoff)
    assert (first.jobs, first.deliveries) == (1, 0)
    assert {job.id for job in store.jobs()} == {dead_job, only_dead}  # the webhook stays for its dead job
    assert store.prune_events(cutoff, ["skipped"]) == Pruned()
    pruned = store.prune_events(cutoff, ["dead"])
    assert (pruned.jobs, pruned.deliveries) == (2, 2)
    assert store.jobs() == [] and store.deliveries() == []
    with pytest.raises(ValueError, match="cannot prune pending, running"):
        store.prune_events(cutoff, ["pending", "running", "done"])


def test_a_replay_keeps_its_old_webhook_until_the_replay_is_old_too(store: Store, clock: FakeClock) -> None:
    [job] = ingest(store, "e1", ("m", "R1"))
    [claimed] = store.claim(1, 30.0)
    store.finish(job, claimed.token, Finish("dead", "404"))
    clock.advance(8 * DAY)
    replayed = store.replay(job, 60.0)
    done(store, replayed)
    assert store.prune_events(clock() - 7 * DAY) == Pruned()  # the webhook is old; its jobs changed today
    assert [j.id for j in store.jobs()] == [replayed.job, job]
    clock.advance(8 * DAY)
    pruned = store.prune_events(clock() - 7 * DAY, ["replayed", "done"])
    assert (pruned.jobs, pruned.deliveries) == (2, 1)
    assert store.deliveries() == []


def big_events(store: Store, count: int, size: int = 20_000) -> None:
    for n in range(count):
        body = f'{{"n": {n}, "pad": "{"x" * size}"}}'.encode()
        store.ingest(delivery(f"e{n}", body), [NewJob("m", f"R{n}")], dedupe_window=WINDOW)
    for claimed in store.claim(count, 30.0):
        done(store, claimed)


def test_sqlite_gives_the_space_of_pruned_events_back_to_the_disk(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "wlmap.db"
    store = SqliteStore(path, clock=clock)
    try:
        assert store.gives_space_back
        big_events(store, 300)
        before = path.stat().st_size
        clock.advance(8 * DAY)
        pruned = store.prune_events(clock() - 7 * DAY)
        after = path.stat().st_size
    finally:
        store.close()
    assert (pruned.jobs, pruned.deliveries) == (300, 300)
    assert before > 6_000_000 and after < before / 5, (before, after)
    assert pruned.freed_bytes >= (before - after) * 0.9, (pruned.freed_bytes, before, after)


def test_an_sqlite_file_made_before_gets_incremental_vacuum_from_vacuum(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # a file whose tables exist without auto_vacuum
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    store = SqliteStore(path, clock=clock)
    try:
        assert not store.gives_space_back
        big_events(store, 100)
        clock.advance(8 * DAY)
        assert store.prune_events(clock() - 7 * DAY).freed_bytes == 0
        before = path.stat().st_size
        shrunk = store.vacuum()
        assert store.gives_space_back
        assert shrunk == before - path.stat().st_size and shrunk > 1_500_000
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_postgresql_is_not_vacuumed_by_wlmap(backend: Backend) -> None:
    store = backend.open()
    if backend.name == "sqlite":
        assert store.vacuum() >= 0
        return
    assert store.gives_space_back and store.give_back() == 0
    with pytest.raises(StoreError, match="only an SQLite store is vacuumed by wlmap; PostgreSQL makes"):
        store.vacuum()


def test_listing_filters_by_status_mapping_time_and_delivery(store: Store, clock: FakeClock) -> None:
    [a] = ingest(store, "e1", ("m", "R1"))
    clock.advance(100)
    [b, c] = ingest(store, "e2", ("m", "R2"), ("n", "R2"))
    assert [j.id for j in store.jobs()] == [c, b, a]
    assert [j.id for j in store.jobs(mapping="n")] == [c]
    assert [j.id for j in store.jobs(since=clock() - 1)] == [c, b]
    assert [j.id for j in store.jobs(statuses=["done"])] == []
    assert [j.id for j in store.jobs(delivery=store.job(a).job.delivery)] == [a]
    assert [j.id for j in store.jobs(limit=1)] == [c]


def test_ping_proves_a_write(store: Store) -> None:
    store.ping()


def test_a_failing_operation_does_not_spoil_the_others_committed_with_it(store: Store) -> None:
    errors: list[Exception] = []

    def bad() -> None:
        try:
            store.replay(12345, 60.0)
        except NotFound as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bad) for _ in range(20)]
    threads += [threading.Thread(target=ingest, args=(store, f"ok-{n}", ("m", f"R{n}"))) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 20 and len(store.jobs()) == 20


# ------------------------------------------------------------------------------------ SQLite specifics


def test_sqlite_survives_reopening_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "wlmap.db"
    first = SqliteStore(path)
    ingest(first, "e1", ("m", "R1"))
    first.close()
    with pytest.raises(StoreUnavailable):
        first.ping()
    again = open_store(path)
    try:
        assert [j.mapping for j in again.jobs()] == ["m"]
    finally:
        again.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sqlite_that_cannot_write_raises_store_unavailable_and_keeps_what_it_had(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "small.db", max_bytes=400_000)
    try:
        big = b"x" * 50_000
        stored = 0
        with pytest.raises(StoreUnavailable, match="full"):
            for n in range(100):
                store.ingest(delivery(f"e{n}", big), [NewJob("m", f"R{n}")], dedupe_window=WINDOW)
                stored += 1
        assert 0 < stored < 100
        assert len(store.jobs(limit=1000)) == stored  # nothing half-written
        store.ping()  # small writes still go through
    finally:
        store.close()


def _ingest_many(store: Store, count: int, prefix: str = "a") -> list[Any]:
    """`count` ingests from concurrent tasks on one event loop; each result or the error it raised."""

    async def one(n: int) -> Any:
        body = f'{{"n": "{prefix}{n}"}}'.encode()
        try:
            return await store.ingest_async(
                delivery(f"{prefix}-{n}", body), [NewJob("m", f"R{prefix}{n}", "m.yaml")], dedupe_window=WINDOW
            )
        except StoreError as exc:
            return exc

    async def all_of_them() -> list[Any]:  # a store that never answers fails the test instead of hanging it
        return list(await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(count))), 30))

    return asyncio.run(all_of_them())


def test_webhooks_of_one_loop_iteration_are_committed_together_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "wlmap.db"
    store = SqliteStore(path)
    try:
        results = _ingest_many(store, 50)
        assert [r.status for r in results] == ["accepted"] * 50
        assert len({r.delivery for r in results}) == 50
        assert store._loop_conn is not None  # committed on the loop's connection, not by the writer thread
        again = _ingest_many(store, 5)  # the same deliveries from a new event loop: duplicates
        assert [r.status for r in again] == ["duplicate"] * 5
    finally:
        store.close()
    with sqlite3.connect(path) as conn:  # durable: another connection sees every row after close
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 50
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 55


def test_a_write_lock_held_elsewhere_never_blocks_the_loop(tmp_path: Path) -> None:
    """Another process writing: the group goes to the writer thread, which waits; the loop keeps running."""
    path = tmp_path / "wlmap.db"
    store = SqliteStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock

    async def scenario() -> tuple[int, Any]:
        ticks = 0
        task = asyncio.ensure_future(store.ingest_async(delivery("locked"), [NewJob("m", "R1")], dedupe_window=WINDOW))
        for _ in range(20):  # 0.2 s in which the loop must keep turning
            await asyncio.sleep(0.01)
            ticks += 1
        assert not task.done()  # not committed while the lock is held elsewhere
        other.execute("COMMIT")
        return ticks, await asyncio.wait_for(task, 10)

    try:
        ticks, result = asyncio.run(scenario())
        assert ticks == 20 and result.status == "accepted"
        assert [j.id for j in store.jobs()] == list(result.jobs)
    finally:
        other.close()
        store.close()


def test_a_group_waits_for_the_writer_threads_turn_in_the_committer_not_on_the_loop(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "wlmap.db")
    handed_over: list[Any] = []
    store._hand_over = handed_over.append  # type: ignore[method-assign]
    store._turn.acquire()  # as the writer thread holds it while it writes

    async def scenario() -> tuple[int, Any]:
        task = asyncio.ensure_future(store.ingest_async(delivery("turn"), [NewJob("m", "R1")], dedupe_window=WINDOW))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not task.done()
        store._turn.release()  # the writer's transaction ended
        return ticks, await asyncio.wait_for(task, 10)

    try:
        ticks, result = asyncio.run(scenario())
        assert ticks == 20 and result.status == "accepted" and handed_over == []
        assert not store._turn.locked()  # given back after the group's COMMIT
        store.ping()  # and the writer thread can write again
    finally:
        store.close()


def test_the_turn_to_write_is_taken_across_processes_and_given_back_at_once(tmp_path: Path) -> None:
    """Two Turns on one store stand for two processes (each opens the lock file: an flock of its own)."""
    path = str(tmp_path / "wlmap.db")
    listener, worker = Turn(path), Turn(path)
    try:
        assert worker.acquire(timeout=1)
        assert not listener.acquire(blocking=False)  # the worker process is committing
        assert not listener.acquire(timeout=0.05) and not listener.locked()
        waited: list[bool] = []
        waiter = threading.Thread(target=lambda: waited.append(listener.acquire(timeout=10)))
        waiter.start()
        time.sleep(0.05)
        worker.release()
        waiter.join(10)
        assert waited == [True] and not worker.acquire(blocking=False)
        listener.release()
        assert worker.acquire(blocking=False)
        worker.release()
    finally:
        listener.close()
        worker.close()


def test_a_failing_ingest_on_the_loop_does_not_spoil_the_others(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "wlmap.db")

    class Broken:
        mapping, mapping_file = "m", "m.yaml"

        @property
        def resource_key(self) -> str:
            raise RuntimeError("a bug in this one job")

    async def scenario() -> list[Any]:
        good = [
            store.ingest_async(delivery(f"ok-{n}", f"{n}".encode()), [NewJob("m", f"R{n}")], dedupe_window=WINDOW)
            for n in range(5)
        ]
        bad = store.ingest_async(delivery("bad", b"bad"), [Broken()], dedupe_window=WINDOW)  # type: ignore[list-item]
        return list(await asyncio.gather(*good, bad, return_exceptions=True))

    try:
        *good, bad = asyncio.run(scenario())
        assert [r.status for r in good] == ["accepted"] * 5
        assert isinstance(bad, RuntimeError)
        assert len(store.jobs()) == 5 and len(store.deliveries()) == 5  # the broken one left nothing behind
    finally:
        store.close()


def test_a_full_disk_on_the_loop_fails_the_group_with_store_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "small.db", max_bytes=400_000)
    try:

        async def big(n: int) -> Any:
            try:
                return await store.ingest_async(
                    delivery(f"big-{n}", b"x" * 50_000 + str(n).encode()), [NewJob("m", f"R{n}")], dedupe_window=WINDOW
                )
            except StoreUnavailable as exc:
                return exc

        async def scenario() -> list[Any]:
            results = []
            for n in range(20):  # one at a time: each its own group
                results.append(await big(n))
            return results

        results = asyncio.run(scenario())
        failed = [r for r in results if isinstance(r, StoreUnavailable)]
        assert failed and "full" in str(failed[0])
        stored = [r for r in results if not isinstance(r, StoreUnavailable)]
        assert len(store.jobs(limit=100)) == len(stored) > 0  # nothing half-written
    finally:
        store.close()


def test_a_group_left_in_flight_by_a_closed_loop_does_not_hold_up_the_next_loop(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "wlmap.db")
    gone = asyncio.new_event_loop()
    gone.close()
    store._group_loop, store._committing = gone, True  # as if that loop ended with its group's COMMIT pending
    try:
        results = _ingest_many(store, 3)  # through the writer thread, one by one: nothing waits forever
        assert [r.status for r in results] == ["accepted"] * 3
    finally:
        store.close()


def test_a_closed_store_refuses_webhooks_from_the_loop(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "wlmap.db")
    store.close()
    results = _ingest_many(store, 3)
    assert all(isinstance(r, StoreUnavailable) for r in results)


def test_sqlite_finds_a_body_without_an_id_through_its_partial_index(tmp_path: Path) -> None:
    from mapper.service.store import sql

    path = tmp_path / "wlmap.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        query = sql.FIND_BY_DEDUPE_KEY.format(**SqliteStore.index_hints)
        plan = conn.execute("EXPLAIN QUERY PLAN " + query, ("sha256:x", 0.0)).fetchall()
        assert "deliveries_without_id_by_dedupe_key" in str(plan)
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "deliveries_by_dedupe_key" not in names  # every webhook with an id no longer pays for it


def test_sqlite_explains_files_it_cannot_use(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        SqliteStore(junk)
    with pytest.raises(StoreError, match="cannot open"):
        SqliteStore(tmp_path / "missing-folder" / "wlmap.db")


def test_sqlite_adopts_a_store_made_before_migrations_existed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = SqliteStore(path)
    ingest(old, "e1", ("m", "R1"))
    old.close()
    with sqlite3.connect(path) as conn:  # what the first release left: tables and meta, no schema_version
        conn.execute("DROP TABLE schema_version")
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')")
        conn.execute("DROP INDEX deliveries_without_id_by_dedupe_key")
        conn.execute("CREATE INDEX deliveries_by_dedupe_key ON deliveries (dedupe_key, received_at)")
        conn.execute("ALTER TABLE jobs DROP COLUMN cuts")
        conn.execute("ALTER TABLE jobs DROP COLUMN holder")
        for index in ("jobs_by_mapping", "jobs_by_resource", "jobs_by_created"):  # what version 5 added
            conn.execute(f"DROP INDEX {index}")
        conn.execute("ALTER TABLE jobs DROP COLUMN max_attempts")
        conn.execute("ALTER TABLE deliveries DROP COLUMN notes")
        conn.execute("DROP TABLE actions")
    again = SqliteStore(path)
    try:
        assert [j.mapping for j in again.jobs()] == ["m"]
    finally:
        again.close()
    with sqlite3.connect(path) as conn:  # adopted as version 1, then upgraded
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(m.version,) for m in MIGRATIONS]
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "deliveries_without_id_by_dedupe_key" in names and "deliveries_by_dedupe_key" not in names


# ------------------------------------------------------------------------------------------- migrations

EXTRA = Migration(
    MIGRATIONS[-1].version + 1,
    "a test's extra table",
    "CREATE TABLE extra (id {id}, payload {blob}); CREATE INDEX extra_by_id ON extra (id)",
)


def test_a_new_store_records_every_migration_once(backend: Backend) -> None:
    backend.open()
    backend.open()  # opening again applies nothing
    assert [row[0] for row in backend.query("SELECT version FROM schema_version ORDER BY version")] == [
        m.version for m in MIGRATIONS
    ]


def test_a_later_migration_is_applied_once_to_an_existing_store(backend: Backend) -> None:
    first = backend.open()
    ingest(first, "e1", ("m", "R1"))
    upgraded = backend.open(migrations=(*MIGRATIONS, EXTRA))
    backend.open(migrations=(*MIGRATIONS, EXTRA))
    assert [j.mapping for j in upgraded.jobs()] == ["m"]
    versions = [row[0] for row in backend.query("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [*(m.version for m in MIGRATIONS), EXTRA.version]
    assert backend.query("SELECT COUNT(*) FROM extra") == [(0,)]


def test_a_store_from_a_newer_wlmap_is_refused_in_plain_words(backend: Backend) -> None:
    backend.open(migrations=(*MIGRATIONS, EXTRA))
    newer, known = EXTRA.version, MIGRATIONS[-1].version
    with pytest.raises(
        StoreError, match=rf"has layout version {newer}, made by a newer wlmap; .* up to {known}: upgrade"
    ):
        backend.open()


def test_nul_characters_are_stored_escaped(store: Store) -> None:
    store.ingest(delivery("e\x00"), [NewJob("m", "R\x00")], dedupe_window=WINDOW)
    [claimed] = store.claim(1, 30.0)
    assert claimed.resource_key == "R\\x00" and claimed.delivery_id == "e\\x00"
    assert store.ingest(delivery("e\x00"), [NewJob("m", "R\x00")], dedupe_window=WINDOW).status == "duplicate"


def test_text_a_database_cannot_hold_is_stored_escaped(store: Store) -> None:
    odd = "R\ud800"  # JSON allows a lone surrogate; UTF-8 does not
    store.ingest(delivery("e1"), [NewJob("m", odd)], dedupe_window=WINDOW)
    [claimed] = store.claim(1, 30.0)
    assert claimed.resource_key == "R\\ud800"
    store.finish(claimed.job, claimed.token, Finish("dead", f"bad {odd}", step=odd, trace={"id": odd}))
    [attempt] = store.job(claimed.job).attempts
    assert attempt.reason == "bad R\\ud800" and attempt.trace == {"id": odd}
