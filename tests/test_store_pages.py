"""Events pages and operator actions in the store, on SQLite and PostgreSQL; and the pages' query plans.

The plans are checked with EXPLAIN QUERY PLAN on a SQLite store: a page must find its rows through an index
(a SEARCH), never read a whole table (a SCAN), whatever the filters; bench/events_page.py times them at 1M rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mapper.service.store import (
    CANCELLED,
    EventQuery,
    Finish,
    NewAction,
    NewDelivery,
    NewJob,
    NotFound,
    NotPossible,
    NotReplayable,
    Store,
)
from mapper.service.store.pages import deliveries_statement, jobs_statement
from mapper.service.store.postgres import PostgresStore
from mapper.service.store.sqlite import SqliteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Clock]]:
    clock = Clock()
    opened: Store
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "wlmap.db", clock=clock)
    else:
        opened = PostgresStore(request.getfixturevalue("postgres").url, clock=clock)
    try:
        yield opened, clock
    finally:
        opened.close()


def ingest(store: Store, n: int, mapping: str | None, resource: str, topic: str = "t/x", notes: str = "") -> Any:
    jobs = [NewJob(mapping, resource, f"/srv/mappings/{mapping}.yaml")] if mapping else []
    delivery = NewDelivery(
        (("x-id", str(n)),), b'{"n": %d}' % n, "sha", f"id-{n}", f"id:{n}", summary=f"{topic} {resource}", notes=notes
    )
    return store.ingest(delivery, jobs, dedupe_window=300)


def run(store: Store, status: str, reason: str, **more: Any) -> None:
    [claimed] = store.claim(1, 60.0)
    assert store.finish(claimed.job, claimed.token, Finish(status, reason, **more))  # type: ignore[arg-type]


def test_pages_go_newest_first_by_keyset_and_filter(store: tuple[Store, Clock]) -> None:
    s, clock = store
    for n in range(1, 8):
        clock.now += 10
        ingest(s, n, "sap" if n % 2 else "snow", f"R{n}")
    ingest(s, 8, None, "R8", topic="user/created", notes=json.dumps({"mappings": {"sap": "topic no"}}))
    first = s.jobs_page(EventQuery(), None, 3)
    assert [line.id for line in first.rows] == [7, 6, 5] and first.more
    second = s.jobs_page(EventQuery(), first.rows[-1].id, 3)
    assert [line.id for line in second.rows] == [4, 3, 2] and second.more
    assert [line.id for line in s.jobs_page(EventQuery(), 2, 3).rows] == [1]
    assert [line.id for line in s.jobs_page(EventQuery(mapping="snow"), None, 10).rows] == [6, 4, 2]
    run(s, "dead", "404")  # job 1
    run(s, "done", "ok")  # job 2
    both = s.jobs_page(EventQuery(statuses=("dead", "done")), None, 1)  # one statement per status, merged
    assert [line.id for line in both.rows] == [2] and both.more
    assert [line.id for line in s.jobs_page(EventQuery(statuses=("dead", "done")), 2, 5).rows] == [1]
    assert [line.id for line in s.jobs_page(EventQuery(resource="R3"), None, 10).rows] == [3]
    assert [line.id for line in s.jobs_page(EventQuery(text="r5"), None, 10).rows] == [5]
    window = EventQuery(since=1_700_000_000.0 + 25, until=1_700_000_000.0 + 55)
    assert [line.id for line in s.jobs_page(window, None, 10).rows] == [5, 4, 3]
    assert s.jobs_page(EventQuery(since=1_800_000_000.0), None, 10).rows == ()
    ignored = s.deliveries_page(("ignored",), EventQuery(), None, 10).rows
    assert [d.id for d in ignored] == [8] and json.loads(ignored[0].notes or "")["mappings"] == {"sap": "topic no"}
    assert s.delivery(8).notes is not None and s.delivery(1).notes is None


def test_why_a_job_waits(store: tuple[Store, Clock]) -> None:
    s, clock = store
    ingest(s, 1, "sap", "R1")
    [claimed] = s.claim(1, 60.0)
    ingest(s, 2, "sap", "R1")  # behind job 1 (running) for the same resource
    lines = {line.id: line for line in s.jobs_page(EventQuery(), None, 10).rows}
    assert lines[2].waiting_behind == 1 and lines[1].waiting_behind is None
    s.finish(claimed.job, claimed.token, Finish("retry", "503", next_attempt_at=clock.now + 300, max_attempts=8))
    job = s.job(1).job
    assert (job.status, job.attempts, job.max_attempts) == ("retry", 1, 8)


def test_retry_now_and_cancel_change_the_job_at_once_and_are_kept(store: tuple[Store, Clock]) -> None:
    s, clock = store
    ingest(s, 1, "sap", "R1")
    ingest(s, 2, "sap", "R2")
    run(s, "retry", "the target answered 503", next_attempt_at=clock.now + 3600, max_attempts=3)
    with pytest.raises(NotPossible, match="job 2 is due already"):
        s.retry_now(2, "alice")
    action = s.retry_now(1, "alice")
    assert (action.kind, action.state, action.requested_by, action.was) == (
        "retry",
        "done",
        "alice",
        "retry (the target answered 503)",
    )
    assert s.job(1).job.next_attempt_at == clock.now
    [again] = s.claim(1, 60.0)  # due now, not in an hour
    assert again.job == 1
    with pytest.raises(NotPossible, match="job 1 is running now"):
        s.cancel(1, "bob")
    cancelled = s.cancel(2, "bob")
    assert s.job(2).job.status == "dead" and s.job(2).job.last_reason == CANCELLED
    assert [a.id for a in s.actions(jobs=[2])] == [cancelled.id]
    with pytest.raises(NotPossible, match="job 2 is dead: it has no tries left; replay it"):
        s.retry_now(2, "bob")
    with pytest.raises(NotFound):
        s.cancel(99, "bob")


def test_a_replay_request_is_carried_out_once_and_leaves_the_job_alone_when_refused(
    store: tuple[Store, Clock],
) -> None:
    s, _ = store
    ingest(s, 1, "sap", "R1")
    run(s, "dead", "the target answered 404")
    ingest(s, 2, None, "R2")
    first, refused, reroute = s.request(
        [
            NewAction("replay", "alice", job=1, was="dead"),
            NewAction("replay", "alice", job=1, was="dead"),
            NewAction("replay", "bob", delivery=2, was="ignored"),
        ]
    )
    assert [a.id for a in s.requested()] == [first, refused, reroute]
    assert s.refuse(refused, "mapping `sap` is not loaded by the service")
    assert s.job(1).job.status == "dead"  # a refused replay uses nothing up
    made = s.carry_out_replay(first, "/srv/new/sap.yaml")
    assert made is not None and s.carry_out_replay(first) is None  # never twice
    new = s.job(made).job
    assert (new.status, new.replay_of, new.mapping_file) == ("pending", 1, "/srv/new/sap.yaml")
    assert s.job(1).job.status == "replayed" and s.job(1).job.superseded_by == made
    [a] = s.actions(ids=[first])
    assert (a.state, a.made, a.note) == ("done", (made,), f"made job {made}")
    assert s.actions(ids=[refused])[0].state == "refused"
    ids = s.carry_out_reroute(reroute, [NewJob("sap", "R2", "/srv/sap.yaml")])
    assert ids is not None and s.delivery(2).status == "accepted"
    assert s.requested() == []
    again = s.request([NewAction("replay", "alice", job=made)])[0]
    with pytest.raises(NotReplayable):
        s.carry_out_replay(again)  # still pending: nothing changed
    assert s.actions(ids=[again])[0].state == "requested"


def test_overview_figures(store: tuple[Store, Clock]) -> None:
    s, clock = store
    ingest(s, 1, "sap", "R1")
    run(s, "dead", "404")
    clock.now += 7200
    ingest(s, 2, "sap", "R2")
    ingest(s, 3, "snow", "R3")
    assert s.made_since(clock.now - 3600) == {"sap": {"pending": 1}, "snow": {"pending": 1}}
    assert s.made_since(clock.now - 86400) == {"sap": {"dead": 1, "pending": 1}, "snow": {"pending": 1}}
    assert s.dead_by_mapping() == {"sap": 1}
    assert s.oldest_pending() == (2, clock.now)


# ----------------------------------------------------------------------------------------- query plans

QUERIES = {
    "newest": EventQuery(),
    "status": EventQuery(statuses=("dead",)),
    "mapping": EventQuery(mapping="sap"),
    "resource": EventQuery(resource="R1"),
    "time": EventQuery(since=1.0, until=2.0),
    "text": EventQuery(text="404"),
    "everything": EventQuery(("dead",), "sap", "R1", 1.0, 2.0, "404"),
}


def plan(conn: sqlite3.Connection, text: str, params: list[Any]) -> list[str]:
    return [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + text, [*params, 51]).fetchall()]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_page_reads_through_an_index(tmp_path: Path, name: str) -> None:
    store = SqliteStore(tmp_path / "plans.db")
    store.close()
    query = QUERIES[name]
    floor = 100 if query.text or query.since else None
    with sqlite3.connect(tmp_path / "plans.db") as conn:
        steps = plan(conn, *jobs_statement(query, 1000, floor, SqliteStore.index_hints))
        steps += plan(conn, *deliveries_statement(("ignored",), query, 1000, floor))
    scans = [step for step in steps if step.startswith("SCAN") and "USING COVERING INDEX" not in step]
    assert scans == [], steps
    assert not any("TEMP B-TREE" in step for step in steps), steps  # no sort: the order comes from the index
    if name in ("status", "mapping", "resource"):
        wanted = {"status": "jobs_by_status", "mapping": "jobs_by_mapping", "resource": "jobs_by_resource"}[name]
        assert any(wanted in step for step in steps), steps
