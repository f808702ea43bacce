"""Buckets in SQL: put an item in its bucket, close buckets with their job, read them; for both dialects.

Rules every dialect keeps (the states are in `bucket_records`):
- an item goes into its bucket in the transaction that stores its webhook (`_place`, from `ingest`), or in
  the one that finishes its collect job (`collect`, for mappings whose items need the GraphQL answer);
- a delivery is collected by a mapping at most once (`bucket_sources`): a replayed collect job, or a second
  try after a crash, finds it there and puts nothing in a second bucket;
- closing a bucket and creating its job (on a delivery of its own, `bucket-<id>`) is one transaction, and
  only the transaction that turns it from open to closed does it: a bucket runs once.
Across processes (PostgreSQL): placing takes the named lock of the mapping and group, then the bucket's row
(FOR UPDATE); the closer takes due buckets with FOR UPDATE SKIP LOCKED, so two replicas never close the same
bucket and never wait for each other; the status re-check in CLOSE_BUCKET (`WHERE status = 'open'`) and the
unique index of open buckets per group are the backstops.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from mapper.service.store import bucket_sql as sql
from mapper.service.store.bucket_records import BucketDetail, BucketItem, BucketRow, NewItem, Placed
from mapper.service.store.dialect import SqlDialect
from mapper.service.store.records import Finish, NewDelivery, NewJob, NotFound, StoreError

T = TypeVar("T")
Until = Callable[[str, Any, list[Any]], str | None]  # (mapping, group, items) → the reason to close, or None

PRUNE_BATCH: Final = 500


class FencedOut(StoreError):
    """The collect job is no longer this worker's (its lease ran out): nothing of its attempt was kept."""


class SqlBuckets(SqlDialect):
    """The bucket half of `base.SqlStore` (a mixin over the dialect: its transactions, locks and statements);
    the state machine's inserts it uses are declared here and written in `base`."""

    @abstractmethod
    def _insert_delivery(
        self, tx: Any, d: NewDelivery, now: float, status: str, body: bytes, duplicate_of: int | None
    ) -> int: ...

    @abstractmethod
    def _insert_job(self, tx: Any, delivery: int, job: NewJob, now: float) -> int: ...

    @abstractmethod
    def _finish(self, tx: Any, job: int, token: int, outcome: Finish) -> bool: ...

    def _row_lock(self, skip: bool) -> str:
        """PostgreSQL row locks (`lock_clause` says the dialect has them); SQLite has one writer and needs none."""
        if not self.lock_clause:
            return ""
        return " FOR UPDATE SKIP LOCKED" if skip else " FOR UPDATE"

    # ------------------------------------------------------------------------------------- placing

    def _place(self, tx: Any, item: NewItem, source: int, now: float) -> Placed:
        """Put `item` (from delivery `source`) into its mapping's open bucket for its group, opening one."""
        found = self._one(tx, sql.ALREADY, (item.mapping, source))
        if found is not None:
            return Placed(int(found[0]), already=True)
        self._lock_name(tx, f"bucket {item.mapping} {item.group}")
        rules, closed = item.rules, []
        row = self._one(tx, sql.OPEN_BUCKET + self._row_lock(False), (item.mapping, item.group))
        if row is None:
            closed += self._make_room(tx, item, now)
            by = _earliest((_after(now, rules.window), rules.words.get("window")), (rules.at, rules.words.get("at")))
            idle = (rules.idle, rules.words.get("idle")) if rules.idle is not None else (None, None)
            values = (item.mapping, item.mapping_file, item.group, now, now, by[0], by[1], idle[0], idle[1])
            row = (int(self._one(tx, sql.INSERT_BUCKET, values)[0]), 0, 0, by[0], by[1], idle[0], idle[1])
        bucket, count, size, closes_by, by_reason, idle_seconds, idle_reason = row
        added = len(item.value.encode())
        replaced = self._one(tx, sql.FIND_DISTINCT, (bucket, item.distinct)) if item.distinct is not None else None
        if replaced is not None:
            position, old = replaced
            self._run(tx, sql.REPLACE_ITEM, (source, item.value, added, now, bucket, position))
            size += added - int(old)
        else:
            count += 1
            size += added
            self._run(tx, sql.INSERT_ITEM, (bucket, count, source, item.distinct, item.value, added, now))
        self._run(tx, sql.INSERT_SOURCE, (item.mapping, source, bucket))
        due, due_reason = _earliest((closes_by, by_reason), (_after(now, idle_seconds), idle_reason))
        self._run(tx, sql.UPDATE_BUCKET, (count, size, now, due, due_reason, int(rules.until), bucket))
        if rules.count is not None and count >= rules.count:
            closed.append(self._close(tx, bucket, rules.words.get("count", "count"), now))
        elif count >= rules.max_items:
            closed.append(self._close(tx, bucket, rules.words.get("max_items", "limit of items"), now))
        return Placed(int(bucket), closed=tuple(c for c in closed if c is not None))

    def _make_room(self, tx: Any, item: NewItem, now: float) -> list[int | None]:
        """Count the bucket about to open; past the limit, close the mapping's oldest (one no other placing holds)."""
        open_now = int(self._one(tx, sql.OPENED, (item.mapping,))[0])
        if open_now <= item.rules.max_open:
            return []
        oldest = self._one(tx, sql.OLDEST_OPEN + self._row_lock(True), (item.mapping,))
        if oldest is None:
            return []
        return [self._close(tx, int(oldest[0]), item.rules.words.get("max_open", "limit of open buckets"), now)]

    def collect(self, job: int, token: int, source: int, item: NewItem, trace: str) -> Placed:
        """Finish a collect job and put its item in its bucket, in one transaction; FencedOut when the job is
        no longer this token's (then nothing of it is kept: finish it as usual to record the late attempt)."""

        def op(tx: Any) -> Placed:
            now = self.clock()
            placed = self._place(tx, item, source, now)
            if placed.already:
                reason = f"already in bucket {placed.bucket} (collected before): not collected again"
            else:
                reason = f"collected into bucket {placed.bucket}"
            outcome = Finish("skipped" if placed.already else "done", reason, None, trace)
            if not self._finish(tx, job, token, outcome):
                raise FencedOut(f"job {job} was taken over by another worker before its item was kept")
            return placed

        return self._write(op).result()

    # ------------------------------------------------------------------------------------- closing

    def _close(self, tx: Any, bucket: int, reason: str, now: float) -> int | None:
        """Close an open bucket and create its run; the job id, or None when it was not open any more."""
        row = self._one(tx, sql.CLOSE_BUCKET, (now, reason, bucket))
        if row is None:
            return None
        mapping, mapping_file, group, count, _ = row
        self._run(tx, sql.CLOSED, (mapping,))
        shown = group if len(group) <= 60 else group[:57] + "..."
        delivery_row = self._internal_delivery(
            tx,
            {"bucket": bucket, "mapping": mapping, "group": json.loads(group), "items": count},
            ("bucket", bucket),
            f"bucket {bucket} of {mapping}: group {shown}, {count} item(s), closed by {reason}",
            now,
        )
        job = self._insert_job(tx, delivery_row, NewJob(mapping, None, mapping_file), now)
        self._run(tx, sql.SET_RUN, (delivery_row, job, bucket))
        return job

    def close_due(self, limit: int, until: Until) -> list[int]:
        """Close up to `limit` buckets whose time rule is due, then check `until` where items came; the jobs."""

        def op(tx: Any) -> list[int]:
            now = self.clock()
            jobs = []
            for bucket, reason in self._all(tx, sql.DUE + self._row_lock(True), (now, limit)):
                jobs.append(self._close(tx, int(bucket), reason or "its time", now))
            for bucket, mapping, group in self._all(tx, sql.TO_CHECK + self._row_lock(True), (limit,)):
                items = [json.loads(row[2]) for row in self._all(tx, sql.ITEMS, (bucket,))]
                reason = until(mapping, json.loads(group), items)
                if reason is None:
                    self._run(tx, sql.CHECKED, (bucket,))
                else:
                    jobs.append(self._close(tx, int(bucket), reason, now))
            return [job for job in jobs if job is not None]

        return self._write(op).result()

    def has_buckets_to_close(self) -> bool:
        """Whether `close_due` would find work (a read: most looks find none, and need no write)."""
        now = self.clock()
        return bool(self._read(lambda tx: self._one(tx, sql.ANY_DUE, (now,)) or self._one(tx, sql.ANY_TO_CHECK)))

    def close_bucket(self, bucket: int, reason: str) -> int:
        """Close one bucket now (an operator's command); its job id. NotFound, or StoreError when closed."""

        def op(tx: Any) -> int:
            row = self._one(tx, sql.BY_ID + self._row_lock(False), (bucket,))
            if row is None:
                raise NotFound(f"there is no bucket {bucket}")
            job = self._close(tx, bucket, reason, self.clock())
            if job is None:
                raise StoreError(f"bucket {bucket} is closed already (job {row[15]})")
            return job

        return self._write(op).result()

    # ------------------------------------------------------------------------------------- reading

    def bucket_for(self, delivery: int) -> BucketDetail | None:
        """The bucket whose run the delivery carries, with its items; None for any other delivery."""
        return self._read(lambda tx: self._detail(tx, sql.BY_DELIVERY, delivery))

    def bucket(self, bucket: int) -> BucketDetail:
        found = self._read(lambda tx: self._detail(tx, sql.BY_ID, bucket))
        if found is None:
            raise NotFound(f"there is no bucket {bucket}")
        return found

    def _detail(self, tx: Any, text: str, key: int) -> BucketDetail | None:
        row = self._one(tx, text, (key,))
        if row is None:
            return None
        items = tuple(
            BucketItem(int(p), int(s), json.loads(v), float(a)) for p, s, v, a in self._all(tx, sql.ITEMS, (row[0],))
        )
        return BucketDetail(_bucket(row), items)

    def _internal_delivery(
        self, tx: Any, payload: dict[str, Any], key: tuple[Any, ...], summary: str, now: float
    ) -> int:
        """The stored delivery behind a run wlmap starts itself (a closed bucket, a due schedule): its JSON body,
        `key` as its delivery id (`bucket-7`) and dedupe key (`bucket:7`), accepted at once; its row id."""
        body = json.dumps(payload).encode()
        delivery = NewDelivery(
            headers=(),
            body=body,
            body_sha256=hashlib.sha256(body).hexdigest(),
            delivery_id="-".join(map(str, key)),
            dedupe_key=":".join(map(str, key)),
            signature="internal",
            summary=summary,
        )
        return self._insert_delivery(tx, delivery, now, "accepted", body, None)

    def buckets(self, *, status: str | None = None, mapping: str | None = None, limit: int = 100) -> list[BucketRow]:
        """Buckets, newest first."""
        where, params = ["1 = 1"], []
        if status is not None:
            where.append("b.status = ?")
            params.append(status)
        if mapping is not None:
            where.append("b.mapping = ?")
            params.append(mapping)
        text = f"{sql.LIST} WHERE {' AND '.join(where)} ORDER BY b.id DESC LIMIT ?"
        return [_bucket(row) for row in self._read(lambda tx: self._all(tx, text, (*params, limit)))]

    def next_bucket_due(self) -> float | None:
        """When the next open bucket's time rule falls due, if any has one."""
        row = self._read(lambda tx: self._one(tx, sql.NEXT_DUE))
        return None if row is None or row[0] is None else float(row[0])

    def open_buckets(self) -> dict[str, tuple[int, int]]:
        """Per mapping: its open buckets and the items in them (for /metrics)."""
        found = self._read(lambda tx: self._all(tx, sql.OPEN_COUNTS))
        return {str(mapping): (int(n), int(items or 0)) for mapping, n, items in found}

    def prune_buckets(self) -> int:
        """Delete closed buckets whose run's delivery was pruned; how many."""

        def op(tx: Any) -> int:
            ids = [int(row[0]) for row in self._all(tx, sql.PRUNABLE, (PRUNE_BATCH,))]
            if ids:
                marks = ", ".join("?" * len(ids))
                for statement in (sql.DELETE_SOURCES, sql.DELETE_ITEMS, sql.DELETE_BUCKETS):
                    self._run(tx, statement.format(marks=marks), ids)
            return len(ids)

        total = 0
        while (count := self._write(op).result()) > 0:
            total += count
        return total


def _after(now: float, seconds: float | None) -> float | None:
    return None if seconds is None else now + seconds


def _earliest(*candidates: tuple[float | None, str | None]) -> tuple[float | None, str | None]:
    """The earliest of (time, reason) pairs whose time is set; (None, None) when none is."""
    timed = [(at, reason) for at, reason in candidates if at is not None]
    return min(timed, key=lambda pair: pair[0]) if timed else (None, None)


def _bucket(row: Sequence[Any]) -> BucketRow:
    return BucketRow(
        int(row[0]),
        row[1],
        row[2],
        json.loads(row[3]),
        row[4],
        float(row[5]),
        float(row[6]),
        int(row[7]),
        int(row[8]),
        None if row[9] is None else float(row[9]),
        row[10],
        bool(row[11]),
        None if row[12] is None else float(row[12]),
        row[13],
        row[14],
        row[15],
    )
