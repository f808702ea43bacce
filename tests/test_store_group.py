"""SQLite's group ingest (mapper/store/group.py) against the one-by-one ingest it stands in for.

Two stores on the same fake clock receive the same webhooks: one through `ingest` (the writer thread, one
webhook at a time), the other through `ingest_async` from one event loop, so each group is written by
`group.ingest`. Results, and every row of deliveries and jobs, must be the same. Hypothesis makes the
sequences: repeated delivery ids, repeated bodies without an id (inside and outside the dedupe window), several
mappings per webhook, several webhooks per resource, and claims in between (started jobs are never coalesced).
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapper.service.store import NewDelivery, NewJob, group
from mapper.service.store.sqlite import SqliteStore

WINDOW = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _delivery(delivery_id: str | None, body_number: int, topic: str) -> NewDelivery:
    body = f'{{"data": {{"id": "B{body_number}"}}}}'.encode()
    body_key = hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()
    key = f"id:{delivery_id}" if delivery_id else f"sha256:{body_key}"
    headers = (("x-scope-topic", topic), ("x-scope-webhook-id", delivery_id or ""))
    return NewDelivery(headers, body, hashlib.sha256(body).hexdigest(), delivery_id, key, summary=f"{topic} B")


_jobs = st.lists(
    st.tuples(st.sampled_from(["m1", "m2"]), st.sampled_from(["R1", "R2", "R3", None])),
    max_size=2,
    unique_by=lambda job: job[0],  # a mapping wants a webhook once
)
_webhook = st.tuples(
    st.one_of(st.none(), st.sampled_from(["d1", "d2", "d3", "d4", "d\x00nul", "d\ud800"])),
    st.integers(0, 3),
    st.sampled_from(["scenario_session/completed", "call/ended"]),
    _jobs,
)
_step = st.one_of(
    st.tuples(st.just("group"), st.lists(_webhook, min_size=1, max_size=6)),
    st.tuples(st.just("claim"), st.integers(1, 3)),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 200.0, 400.0])),
)


def _rows(path: Path) -> dict[str, list[Any]]:
    with sqlite3.connect(path) as conn:
        return {
            "deliveries": conn.execute("SELECT * FROM deliveries ORDER BY id").fetchall(),
            "jobs": conn.execute("SELECT * FROM jobs ORDER BY id").fetchall(),
            "sequence": conn.execute("SELECT name, seq FROM sqlite_sequence ORDER BY name").fetchall(),
        }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_step, min_size=1, max_size=8))
def test_a_group_is_written_exactly_as_one_webhook_after_another(tmp_path_factory: Any, steps: list[Any]) -> None:
    folder = tmp_path_factory.mktemp("group")
    clock = Clock()
    one_by_one = SqliteStore(folder / "a.db", clock=clock)
    grouped = SqliteStore(folder / "b.db", clock=clock)
    handed_over: list[Any] = []
    safety_net = grouped._hand_over  # one by one through the writer thread: it would hide a wrong group write

    def spy(live: list[Any]) -> None:
        handed_over.append(live)
        safety_net(live)

    grouped._hand_over = spy  # type: ignore[method-assign]
    try:
        for kind, argument in steps:
            if kind == "advance":
                clock.now += argument
            elif kind == "claim":
                assert [c.job for c in one_by_one.claim(argument, 60.0)] == [
                    c.job for c in grouped.claim(argument, 60.0)
                ]
            else:
                requests = [
                    (_delivery(did, body, topic), [NewJob(m, r, f"{m}.yaml") for m, r in jobs])
                    for did, body, topic, jobs in argument
                ]
                expected = [one_by_one.ingest(d, jobs, dedupe_window=WINDOW) for d, jobs in requests]

                async def together(requests: list[Any] = requests) -> list[Any]:
                    waits = [grouped.ingest_async(d, jobs, dedupe_window=WINDOW) for d, jobs in requests]
                    return list(await asyncio.gather(*waits))

                assert asyncio.run(together()) == expected
    finally:
        one_by_one.close()
        grouped.close()
    assert handed_over == []  # every group was written by group.ingest itself
    assert _rows(folder / "b.db") == _rows(folder / "a.db")


def test_one_group_holds_every_webhook_of_a_loop_iteration(tmp_path: Path, monkeypatch: Any) -> None:
    """The case the differential test relies on, and the point of grouping: one transaction for all."""
    store = SqliteStore(tmp_path / "wlmap.db")
    sizes: list[int] = []
    original = group.ingest

    def spy(conn: Any, requests: list[Any], *rest: Any) -> Any:
        sizes.append(len(requests))
        return original(conn, requests, *rest)

    monkeypatch.setattr(group, "ingest", spy)

    async def together() -> list[Any]:
        waits = [
            store.ingest_async(_delivery(f"x{n}", n, "t"), [NewJob("m", f"R{n}")], dedupe_window=WINDOW)
            for n in range(40)
        ]
        return list(await asyncio.gather(*waits))

    try:
        results = asyncio.run(together())
    finally:
        store.close()
    assert sizes == [40]
    assert [r.delivery for r in results] == list(range(1, 41))


def test_coalescing_in_a_group_chains_older_jobs_to_the_newest(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "wlmap.db")
    try:
        first = store.ingest(_delivery("a", 0, "t"), [NewJob("m", "R")], dedupe_window=WINDOW)

        async def together() -> list[Any]:
            waits = [
                store.ingest_async(_delivery(f"b{n}", n, "t"), [NewJob("m", "R")], dedupe_window=WINDOW)
                for n in range(3)
            ]
            return list(await asyncio.gather(*waits))

        results = asyncio.run(together())
        assert [r.coalesced for r in results] == [first.jobs, results[0].jobs, results[1].jobs]
        pending = [(j.id, j.status) for j in store.jobs(statuses=["pending"])]
        assert pending == [(results[2].jobs[0], "pending")]
    finally:
        store.close()
