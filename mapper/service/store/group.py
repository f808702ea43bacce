"""SQLite: the webhooks of one group ingested with a handful of statements, however many there are.

The result is exactly what `SqlStore._ingest` gives when the same webhooks are ingested one after another
(tests/test_store_group.py checks it against that, row for row): the same duplicates (by delivery id; by body
within the window for webhooks without one), the same ids, the same jobs, and the same coalescing: a job
supersedes the pending jobs of its mapping and resource that came before it, in the database or earlier in
the group.

Why: these statements run on the event loop's thread (sqlite.py says why), where every statement costs
Python time the HTTP side needs; one statement per table per group, instead of four per webhook, keeps the
loop free for HTTP (bench/service_load.py, ack). Anything unexpected (a bug) makes the caller roll back and
hand the group to the one-by-one path.
The caller holds the write transaction (BEGIN IMMEDIATE); ids are given explicitly, following AUTOINCREMENT's
rule (one more than the largest ever given, sqlite_sequence), which SQLite then records as usual.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, NamedTuple

from mapper.service.store import rows, sql
from mapper.service.store.bucket_records import NewItem
from mapper.service.store.records import DeliveryStatus, Ingested, NewDelivery, NewJob

Place = Callable[[NewItem, int], int]  # (an item, the delivery it came from) → its bucket, in the same transaction

ROWS_PER_STATEMENT: Final = 200  # 12 values a row: far below SQLite's 32,766 host parameters

_NEXT_IDS: Final = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), 0), "
    "COALESCE((SELECT MAX(id) FROM deliveries), 0)), "
    "MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0), COALESCE((SELECT MAX(id) FROM jobs), 0))"
)
_FIRSTS_BY_ID: Final = "SELECT delivery_id, id FROM deliveries WHERE status <> 'duplicate' AND delivery_id IN ({marks})"
_PENDING_OF: Final = (
    "SELECT id, resource_key FROM jobs{by_resource} WHERE mapping = ? AND resource_key IN ({marks}) "
    f"AND status = 'pending' AND attempts = 0 AND status IN {sql.ACTIVE_IN}"
)
_SUPERSEDE: Final = (
    "UPDATE jobs SET status = 'coalesced', superseded_by = ?, last_reason = ?, updated_at = ? "
    "WHERE id = ? AND status = 'pending' AND attempts = 0"
)
_DELIVERY_COLUMNS: Final = (
    "id, received_at, delivery_id, dedupe_key, body_sha256, signature, summary, headers, body, status, duplicate_of, "
    "notes"
)
_JOB_COLUMNS: Final = (
    "id, delivery, mapping, mapping_file, resource_key, status, attempts, next_attempt_at, lease_until, token, "
    "last_reason, replay_of, superseded_by, created_at, updated_at"
)


class Request(NamedTuple):
    """One webhook to ingest: what `Store.ingest` takes."""

    delivery: NewDelivery
    jobs: tuple[NewJob, ...]
    window: float


def ingest(
    conn: sqlite3.Connection, group: Sequence[Request], now: float, hints: dict[str, str], place: Place | None = None
) -> list[Ingested]:
    """Write the group inside the caller's transaction; one Ingested per request, in order.

    A collecting mapping's item is put in its bucket by `place`, after the deliveries are written."""
    ids = [rows.storable(r.delivery.delivery_id) for r in group if r.delivery.delivery_id is not None]
    firsts: dict[str | None, int] = {}  # delivery id → the row that holds the first copy
    for chunk in _chunks(sorted(set(ids)), ROWS_PER_STATEMENT):
        statement = _FIRSTS_BY_ID.format(marks=_marks(len(chunk)))
        firsts.update((key, row_id) for key, row_id in conn.execute(statement, chunk))
    by_body: dict[str, int] = {}  # dedupe key → latest row without a delivery id, within the window
    next_delivery, next_job = (int(value) + 1 for value in conn.execute(_NEXT_IDS).fetchone())

    deliveries: list[tuple[Any, ...]] = []
    jobs: list[list[Any]] = []  # lists: a later job of the same resource fills in superseded_by
    results: list[Ingested] = []
    owned: dict[int, list[int]] = {}  # request index → indexes of its jobs in `jobs`
    items: list[tuple[int, int, NewItem]] = []  # (request index, delivery row, item)
    for index, request in enumerate(group):
        d = request.delivery
        delivery_id, dedupe_key = rows.storable(d.delivery_id), rows.storable(d.dedupe_key)
        assert dedupe_key is not None
        first = _first_copy(conn, request, delivery_id, dedupe_key, firsts, by_body, now, hints)
        row_id, next_delivery = next_delivery, next_delivery + 1
        if first is not None:  # kept for the audit trail, without the body the first copy already holds
            deliveries.append(_delivery_row(row_id, d, now, "duplicate", b"", first))
            results.append(Ingested(row_id, "duplicate", duplicate_of=first))
            continue
        if delivery_id is not None:
            firsts[delivery_id] = row_id
        else:
            by_body[dedupe_key] = row_id
        status: DeliveryStatus = "accepted" if request.jobs else "ignored"
        deliveries.append(_delivery_row(row_id, d, now, status, d.body, None))
        created = []
        for job in request.jobs:
            if job.item is not None:
                items.append((index, row_id, job.item))
                continue
            job_id, next_job = next_job, next_job + 1
            created.append(job_id)
            owned.setdefault(index, []).append(len(jobs))
            resource = rows.storable(job.resource_key)
            # id, delivery, mapping, mapping_file, resource_key, status, attempts, next_attempt_at, lease_until,
            # token, last_reason, replay_of, superseded_by, created_at, updated_at
            row = [job_id, row_id, job.mapping, job.mapping_file, resource, "pending", 0, now, None, 0]
            jobs.append([*row, None, None, None, now, now])
        results.append(Ingested(row_id, status, jobs=tuple(created)))

    coalesced = _coalesce(conn, jobs, now, hints)
    for chunk in _chunks(deliveries, ROWS_PER_STATEMENT):
        conn.execute(_insert("deliveries", _DELIVERY_COLUMNS, 12, len(chunk)), [v for row in chunk for v in row])
    for chunk in _chunks(jobs, ROWS_PER_STATEMENT):
        conn.execute(_insert("jobs", _JOB_COLUMNS, 15, len(chunk)), [v for row in chunk for v in row])
    if items:
        _place_items(results, items, place)
    if coalesced:
        _note_coalesced(results, owned, coalesced)
    return results


def _first_copy(
    conn: sqlite3.Connection,
    request: Request,
    delivery_id: str | None,
    dedupe_key: str,
    firsts: dict[str | None, int],
    by_body: dict[str, int],
    now: float,
    hints: dict[str, str],
) -> int | None:
    """The row holding the first copy of this webhook (by delivery id, else by body within the window), or None."""
    if delivery_id is not None:
        return firsts.get(delivery_id)
    if dedupe_key in by_body and request.window >= 0:  # the group's own rows are `now`, inside the window
        return by_body[dedupe_key]
    found = conn.execute(sql.FIND_BY_DEDUPE_KEY.format(**hints), (dedupe_key, now - request.window)).fetchone()
    return None if found is None else int(found[0])


def _note_coalesced(results: list[Ingested], owned: dict[int, list[int]], coalesced: dict[int, list[int]]) -> None:
    """Each result names the older jobs its own jobs took over: in the order of its jobs, each job's sorted."""
    for index, job_indexes in owned.items():
        superseded = tuple(old for job in job_indexes for old in sorted(coalesced.get(job, ())))
        if superseded:
            done = results[index]
            results[index] = Ingested(
                done.delivery, done.status, jobs=done.jobs, coalesced=superseded, buckets=done.buckets
            )


def _place_items(results: list[Ingested], items: list[tuple[int, int, NewItem]], place: Place | None) -> None:
    if place is None:
        raise RuntimeError("items to collect, and no way to place them")  # a bug: the caller hands over
    for index, row_id, item in items:
        done = results[index]
        bucket = place(item, row_id)
        results[index] = Ingested(done.delivery, done.status, jobs=done.jobs, buckets=(*done.buckets, bucket))


def _coalesce(
    conn: sqlite3.Connection, jobs: list[list[Any]], now: float, hints: dict[str, str]
) -> dict[int, list[int]]:
    """Mark what each new job supersedes; returns {index of the new job: the job ids it superseded}."""
    latest: dict[tuple[str, str], int] = {}  # (mapping, resource) → index of the group's latest job for it
    superseded: dict[int, list[int]] = {}
    firsts: dict[tuple[str, str], int] = {}
    for index, row in enumerate(jobs):
        mapping, resource = row[2], row[4]
        if resource is None:
            continue
        key = (mapping, resource)
        if key in latest:  # the group's earlier job never started: this one makes it moot
            earlier = jobs[latest[key]]
            earlier[5], earlier[10], earlier[12] = "coalesced", rows.superseded_reason(row[0]), row[0]
            superseded.setdefault(index, []).append(earlier[0])
        else:
            firsts[key] = index
        latest[key] = index
    by_mapping: dict[str, list[str]] = {}
    for mapping, resource in firsts:
        by_mapping.setdefault(mapping, []).append(resource)
    updates = []
    for mapping, resources in by_mapping.items():
        for chunk in _chunks(resources, ROWS_PER_STATEMENT):
            statement = _PENDING_OF.format(marks=_marks(len(chunk)), **hints)
            for old, resource in conn.execute(statement, (mapping, *chunk)):
                index = firsts[(mapping, resource)]
                job_id = jobs[index][0]
                updates.append((job_id, rows.superseded_reason(job_id), now, old))
                superseded.setdefault(index, []).append(int(old))
    if updates:
        conn.executemany(_SUPERSEDE, updates)
    return superseded


def _delivery_row(
    row_id: int, d: NewDelivery, now: float, status: str, body: bytes, duplicate_of: int | None
) -> tuple[Any, ...]:
    return (row_id, *rows.delivery_values(d, now, status, body, duplicate_of))


def _insert(table: str, columns: str, width: int, count: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * count)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
