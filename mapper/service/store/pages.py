"""Pages of jobs and stored webhooks for operators, newest first, that stay fast however many rows there are.

Keyset pagination: a page is "the next N rows below id X" (never OFFSET, which reads every row it skips), and
every filter goes through an index ordered by id within it: status (jobs_by_status), mapping (jobs_by_mapping),
resource (jobs_by_resource). A time range becomes a range of ids: ids are handed out in time order, so the
first job made at or after a time is found in jobs_by_created and bounds the page's ids (the exact times are
checked as well). Free text cannot use an index: it is looked for in at most SEARCH_WINDOW rows per page,
below the cursor, and the page says how far it looked (`searched_to`), so that the next page goes on from there.
tests/test_store_pages.py checks every filter's plan for a full scan; bench/events_page.py times them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from mapper.service.store import sql
from mapper.service.store.dialect import SqlDialect
from mapper.service.store.interface import Tx
from mapper.service.store.operator import SEARCH_WINDOW, DeliveryLine, EventQuery, JobLine, Page

T = TypeVar("T")

_TOP: Final = 2**62  # above every id


JOB_LINE: Final = (
    "SELECT j.id, j.delivery, d.received_at, j.created_at, j.mapping, j.mapping_file, j.resource_key, j.status, "
    "j.attempts, j.next_attempt_at, j.max_attempts, j.last_reason, j.replay_of, j.superseded_by, d.summary, "
    "CASE WHEN j.status = 'pending' THEN (SELECT MIN(e.id) FROM jobs e{by_resource} WHERE e.mapping = j.mapping "
    f"AND e.resource_key = j.resource_key AND e.id < j.id AND e.status IN {sql.ACTIVE_IN}) END "
    "FROM jobs j JOIN deliveries d ON d.id = j.delivery"
)
DELIVERY_LINE: Final = (
    "SELECT d.id, d.received_at, d.delivery_id, d.status, d.summary, d.duplicate_of, d.notes FROM deliveries d"
)
_JOB_TEXT: Final = (
    "(LOWER(COALESCE(j.last_reason, '')) LIKE ? ESCAPE '\\' OR LOWER(d.summary) LIKE ? ESCAPE '\\' "
    "OR LOWER(COALESCE(j.resource_key, '')) LIKE ? ESCAPE '\\' "
    "OR LOWER(COALESCE(d.delivery_id, '')) LIKE ? ESCAPE '\\')"
)
_DELIVERY_TEXT: Final = (
    "(LOWER(d.summary) LIKE ? ESCAPE '\\' OR LOWER(COALESCE(d.delivery_id, '')) LIKE ? ESCAPE '\\' "
    "OR LOWER(COALESCE(d.notes, '')) LIKE ? ESCAPE '\\')"
)
# The first and last ids made in a time range (ORDER BY time, then id: the index's own order, no sort).
_FIRST_JOB_FROM: Final = "SELECT id FROM jobs WHERE created_at >= ? ORDER BY created_at, id LIMIT 1"
_LAST_JOB_BEFORE: Final = "SELECT id FROM jobs WHERE created_at < ? ORDER BY created_at DESC, id DESC LIMIT 1"
_FIRST_DELIVERY_FROM: Final = "SELECT id FROM deliveries WHERE received_at >= ? ORDER BY received_at, id LIMIT 1"
_LAST_DELIVERY_BEFORE: Final = (
    "SELECT id FROM deliveries WHERE received_at < ? ORDER BY received_at DESC, id DESC LIMIT 1"
)
_NEWEST_JOB: Final = "SELECT MAX(id) FROM jobs"
_NEWEST_DELIVERY: Final = "SELECT MAX(id) FROM deliveries"

# Overview figures: each reads one index range.
_MADE_SINCE: Final = "SELECT mapping, status, COUNT(*) FROM jobs WHERE created_at >= ? GROUP BY mapping, status"
_DEAD_BY_MAPPING: Final = "SELECT mapping, COUNT(*) FROM jobs WHERE status = 'dead' GROUP BY mapping"
_OLDEST_PENDING: Final = "SELECT MIN(id) FROM jobs WHERE status = 'pending'"
_MADE_AT: Final = "SELECT created_at FROM jobs WHERE id = ?"


def pattern(text: str) -> str:
    """A LIKE pattern that finds `text` anywhere, case aside, with LIKE's own characters taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def jobs_statement(query: EventQuery, below: int, floor: int | None, hints: dict[str, str]) -> tuple[str, list[Any]]:
    """The SELECT of a jobs page: ids below `below` (and from `floor` up), the filters, newest first."""
    where: list[str] = ["j.id < ?"]
    params: list[Any] = [below]
    if floor is not None:
        where.append("j.id >= ?")
        params.append(floor)
    if query.statuses:
        where.append(f"j.status IN ({sql.marks(len(query.statuses))})")
        params.extend(query.statuses)
    if query.mapping is not None:
        where.append("j.mapping = ?")
        params.append(query.mapping)
    if query.resource is not None:
        where.append("j.resource_key = ?")
        params.append(query.resource)
    if query.since is not None:
        where.append("j.created_at >= ?")
        params.append(query.since)
    if query.until is not None:
        where.append("j.created_at < ?")
        params.append(query.until)
    if query.text:
        where.append(_JOB_TEXT)
        params.extend([pattern(query.text)] * 4)
    return f"{JOB_LINE.format(**hints)} WHERE {' AND '.join(where)} ORDER BY j.id DESC LIMIT ?", params


def deliveries_statement(
    statuses: Sequence[str], query: EventQuery, below: int, floor: int | None
) -> tuple[str, list[Any]]:
    """The SELECT of a page of stored webhooks in `statuses`."""
    where: list[str] = ["d.id < ?"]
    params: list[Any] = [below]
    if floor is not None:
        where.append("d.id >= ?")
        params.append(floor)
    if statuses:
        where.append(f"d.status IN ({sql.marks(len(statuses))})")
        params.extend(statuses)
    if query.since is not None:
        where.append("d.received_at >= ?")
        params.append(query.since)
    if query.until is not None:
        where.append("d.received_at < ?")
        params.append(query.until)
    if query.text:
        where.append(_DELIVERY_TEXT)
        params.extend([pattern(query.text)] * 3)
    return f"{DELIVERY_LINE} WHERE {' AND '.join(where)} ORDER BY d.id DESC LIMIT ?", params


def _job_line(row: Sequence[Any]) -> JobLine:
    return JobLine(
        int(row[0]),
        int(row[1]),
        float(row[2]),
        float(row[3]),
        row[4],
        row[5],
        row[6],
        row[7],
        int(row[8]),
        float(row[9]),
        None if row[10] is None else int(row[10]),
        row[11],
        row[12],
        row[13],
        row[14],
        None if row[15] is None else int(row[15]),
    )


def _delivery_line(row: Sequence[Any]) -> DeliveryLine:
    return DeliveryLine(int(row[0]), float(row[1]), row[2], row[3], row[4], row[5], row[6])


class Pages(SqlDialect):
    """Events pages and overview figures for SqlStore (see the module docstring)."""

    def jobs_page(self, query: EventQuery, before: int | None = None, limit: int = 50) -> Page[JobLine]:
        """Up to `limit` jobs with ids below `before` (the newest when None) that match `query`."""

        def op(tx: Tx) -> Page[JobLine]:
            bounds = self._bounds(tx, query, before, _NEWEST_JOB, _FIRST_JOB_FROM, _LAST_JOB_BEFORE)
            if bounds is None:
                return Page((), False)
            below, lowest, floor = bounds
            # One statement per status, merged here: with `status IN (a, b)` the index gives each status in id
            # order, and the database would sort them all together before the LIMIT.
            found: list[Any] = []
            each: list[tuple[str, ...]] = [(status,) for status in query.statuses] or [()]
            for statuses in each:
                one = dataclasses.replace(query, statuses=statuses)
                text, params = jobs_statement(one, below, max(lowest, floor or 0) or None, self.index_hints)
                found += self._all(tx, text, (*params, limit + 1))
            found.sort(key=lambda row: int(row[0]), reverse=True)
            return _page([_job_line(row) for row in found[: limit + 1]], limit, floor)

        return self._read(op)

    def deliveries_page(
        self, statuses: Sequence[str], query: EventQuery, before: int | None = None, limit: int = 50
    ) -> Page[DeliveryLine]:
        """Up to `limit` stored webhooks in `statuses` with ids below `before`, matching the query's time and text."""

        def op(tx: Tx) -> Page[DeliveryLine]:
            bounds = self._bounds(tx, query, before, _NEWEST_DELIVERY, _FIRST_DELIVERY_FROM, _LAST_DELIVERY_BEFORE)
            if bounds is None:
                return Page((), False)
            below, lowest, floor = bounds
            text, params = deliveries_statement(statuses, query, below, max(lowest, floor or 0) or None)
            found = self._all(tx, text, (*params, limit + 1))
            return _page([_delivery_line(row) for row in found], limit, floor)

        return self._read(op)

    def _bounds(
        self, tx: Tx, query: EventQuery, before: int | None, newest: str, first_from: str, last_before: str
    ) -> tuple[int, int, int | None] | None:
        """(ids below this, ids from this, the text search's floor or None); None when nothing can match."""
        top = self._one(tx, newest)
        below = min(before if before is not None else _TOP, int(top[0] or 0) + 1)
        lowest = 0
        if query.since is not None:
            first = self._one(tx, first_from, (query.since,))
            if first is None:
                return None
            lowest = int(first[0])
        if query.until is not None:
            last = self._one(tx, last_before, (query.until,))
            if last is None:
                return None
            below = min(below, int(last[0]) + 1)
        if below <= lowest:
            return None
        floor = below - SEARCH_WINDOW if query.text and below - SEARCH_WINDOW > lowest else None
        return below, lowest, floor

    # ------------------------------------------------------------------------------ overview

    def made_since(self, since: float) -> dict[str, dict[str, int]]:
        """Jobs made since then, by mapping and current status."""
        counts: dict[str, dict[str, int]] = {}
        for mapping, status, count in self._read(lambda tx: self._all(tx, _MADE_SINCE, (since,))):
            counts.setdefault(str(mapping), {})[str(status)] = int(count)
        return counts

    def dead_by_mapping(self) -> dict[str, int]:
        """Dead jobs (dead letters) by mapping."""
        return {str(m): int(n) for m, n in self._read(lambda tx: self._all(tx, _DEAD_BY_MAPPING))}

    def oldest_pending(self) -> tuple[int, float] | None:
        """The pending job that has waited longest, and when it was made; None when none waits."""

        def op(tx: Tx) -> tuple[int, float] | None:
            found = self._one(tx, _OLDEST_PENDING)
            if found is None or found[0] is None:
                return None
            made = self._one(tx, _MADE_AT, (found[0],))
            return int(found[0]), float(made[0])

        return self._read(op)


def _page(rows: list[T], limit: int, floor: int | None) -> Page[T]:
    more = len(rows) > limit
    kept = tuple(rows[:limit])
    searched_to = floor if floor is not None and not more else None
    return Page(kept, more or searched_to is not None, searched_to)
