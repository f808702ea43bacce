"""The store's state machine in portable SQL (the interface is `interface.Store`); a dialect only runs transactions.

Rules every implementation keeps (the state diagram is in `records`):
- ingest writes the delivery, its jobs and the coalescing of older jobs in ONE transaction;
- a delivery with a known X-Scope-Webhook-Id, or (without an id) the same topic and body within the dedupe
  window, is stored as `duplicate` and creates no job;
- a job is claimable only when no earlier job of the SAME MAPPING for the same resource still has work to do:
  each mapping sees one resource's events in arrival order, while a target that is down for one mapping does
  not hold up the other mappings of the same resource;
- each claim increments the job's fencing token; finish, extend and release are refused for an older token;
- a running job whose lease has expired is claimable again (its unfinished attempt is recorded as lost); such a
  cut attempt is counted, and after `Cuts.limit` of them the job is dead instead (a job that kills the process
  every time must not take the queue down with it for ever);
- a claim stops after a job with cut attempts, so that its worker can run it alone (`Claimed.cuts`).

Across processes (several replicas on one PostgreSQL) the dialect adds what a single writer gets for free:
`_lock_name` serialises ingests of the same dedupe key (so two listeners cannot both accept one body) and of the same
resource (so job ids, which order a resource's jobs, are committed in the order they were assigned), and
`lock_clause` lets claimers skip each other's rows instead of taking the same job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

from mapper.service.store import holders, rows, sql
from mapper.service.store.actions import Actions
from mapper.service.store.interface import Tx, run_blocking
from mapper.service.store.maintenance import Maintenance
from mapper.service.store.pages import Pages
from mapper.service.store.records import (
    CUTS,
    Claimed,
    Cuts,
    DeliveryRow,
    DeliveryStatus,
    Finish,
    Ingested,
    JobDetail,
    JobRow,
    NewDelivery,
    NewJob,
    NotFound,
)
from mapper.service.store.schedules import SqlSchedules

T = TypeVar("T")
log = logging.getLogger("wlmap.store")


class SqlStore(SqlSchedules, Maintenance, Actions, Pages):
    """The state machine in SQL that SQLite and PostgreSQL both run; subclasses supply transactions.

    Buckets and schedules (`buckets`, `schedules`) share its transactions: an item goes in with its webhook."""

    # ------------------------------------------------------------------------------------ ingest

    def ingest(self, delivery: NewDelivery, jobs: Sequence[NewJob], *, dedupe_window: float) -> Ingested:
        return self._write(lambda tx: self._ingest(tx, delivery, tuple(jobs), dedupe_window)).result()

    def _ingest(self, tx: Tx, delivery: NewDelivery, jobs: tuple[NewJob, ...], window: float) -> Ingested:
        # Locks in one order everywhere (the dedupe key, then resources sorted): no two ingests deadlock.
        dedupe_key = rows.storable(delivery.dedupe_key)
        self._lock_name(tx, f"dedupe {dedupe_key}")
        now = self.clock()
        if delivery.delivery_id is not None:
            first = self._one(tx, sql.FIND_BY_DELIVERY_ID, (rows.storable(delivery.delivery_id),))
        else:
            first = self._one(tx, sql.FIND_BY_DEDUPE_KEY.format(**self.index_hints), (dedupe_key, now - window))
        if first is not None:  # kept for the audit trail, without the body the first copy already holds
            row_id = self._insert_delivery(tx, delivery, now, "duplicate", b"", first[0])
            return Ingested(row_id, "duplicate", duplicate_of=first[0])
        for resource in sorted({job.resource_key for job in jobs if job.resource_key is not None}):
            self._lock_name(tx, f"resource {rows.storable(resource)}")
        status: DeliveryStatus = "accepted" if jobs else "ignored"
        row_id = self._insert_delivery(tx, delivery, now, status, delivery.body, None)
        created: list[int] = []
        coalesced: list[int] = []
        buckets: list[int] = []
        for job in jobs:
            if job.item is not None:  # a collecting mapping: the item goes in its bucket, no job of its own
                buckets.append(self._place(tx, job.item, row_id, now).bucket)
                continue
            job_id = self._insert_job(tx, row_id, job, now)
            created.append(job_id)
            coalesced.extend(self._coalesce(tx, job, job_id, now))
        return Ingested(row_id, status, jobs=tuple(created), coalesced=tuple(coalesced), buckets=tuple(buckets))

    def _insert_delivery(
        self, tx: Tx, d: NewDelivery, now: float, status: str, body: bytes, duplicate_of: int | None
    ) -> int:
        row = self._one(tx, sql.INSERT_DELIVERY, rows.delivery_values(d, now, status, body, duplicate_of))
        return int(row[0])

    def _insert_job(
        self,
        tx: Tx,
        delivery: int,
        job: NewJob,
        now: float,
        *,
        lease_until: float | None = None,
        replay_of: int | None = None,
    ) -> int:
        """A pending job; with lease_until, a job already running its first attempt for the caller."""
        running = lease_until is not None
        status = "running" if running else "pending"
        resource = rows.storable(job.resource_key)
        row = self._one(
            tx,
            sql.INSERT_JOB,
            (
                delivery,
                job.mapping,
                job.mapping_file,
                resource,
                status,
                int(running),
                now,
                lease_until,
                int(running),
                replay_of,
                now,
                now,
                holders.current() if running else None,
            ),
        )
        job_id = int(row[0])
        if running:
            self._run(tx, sql.INSERT_ATTEMPT, (job_id, 1, 1, now))
        return job_id

    def _coalesce(self, tx: Tx, job: NewJob, job_id: int, now: float) -> list[int]:
        """Older jobs of this mapping for this resource that never started: the new job makes them moot."""
        if job.resource_key is None:
            return []
        resource = rows.storable(job.resource_key)
        anything = sql.ANY_TO_COALESCE.format(**self.index_hints)
        if self._one(tx, anything, (job.mapping, resource, job_id)) is None:
            return []  # the UPDATE below re-checks every condition: a job started meanwhile is left alone
        found = self._all(
            tx,
            sql.COALESCE_OLDER.format(**self.index_hints),
            (
                job_id,
                rows.superseded_reason(job_id),
                now,
                job.mapping,
                resource,
                job_id,
            ),
        )
        return sorted(int(row[0]) for row in found)

    # ----------------------------------------------------------------------------------- working

    async def _write_async(self, op: Callable[[Tx], T], executor: Executor | None) -> T:
        """`_write` for an event loop (SQLite's writer thread resolves it without a pool thread waiting)."""
        return await run_blocking(executor, lambda: self._write(op).result())

    def claim(self, limit: int, lease: float, cuts: Cuts = CUTS) -> list[Claimed]:
        if limit <= 0:
            return []
        return self._write(lambda tx: self._claim(tx, limit, lease, cuts)).result()

    async def claim_async(
        self, limit: int, lease: float, executor: Executor | None = None, cuts: Cuts = CUTS
    ) -> list[Claimed]:
        if limit <= 0:
            return []
        return await self._write_async(lambda tx: self._claim(tx, limit, lease, cuts), executor)

    def _claim(self, tx: Tx, limit: int, lease: float, policy: Cuts) -> list[Claimed]:
        now = self.clock()
        claimed: list[Claimed] = []
        claimable = sql.CLAIMABLE.format(**self.index_hints) + self.lock_clause
        for _ in range(2):  # once more when a cut job was put aside: the jobs it held up may be free now
            put_aside = False
            for job_id, status, cuts in self._all(tx, claimable, (now, now, now, limit - len(claimed))):
                if status == "running" and not self._cut(tx, job_id, int(cuts) + 1, now, policy):
                    put_aside = True  # it waits, or is dead
                    continue
                token, number = self._one(tx, sql.TAKE_JOB, (now + lease, holders.current(), now, job_id))
                self._run(tx, sql.INSERT_ATTEMPT, (job_id, number, token, now))
                claimed.append(rows.claimed(self._one(tx, sql.CLAIMED, (job_id,))))
                if claimed[-1].cuts:
                    return claimed  # its worker runs it alone: nothing more for this worker now
            if not put_aside or len(claimed) >= limit:
                break
        return claimed

    def _cut(self, tx: Tx, job: int, cuts: int, now: float, policy: Cuts) -> bool:
        """Record that the job's attempt was cut short (its `cuts`-th); True if it may run again at once."""
        self._run(
            tx,
            sql.LOSE_ATTEMPTS,
            (now, "the lease expired before the attempt finished (worker stopped or stalled)", job),
        )
        wait = policy.wait(cuts)
        reason = rows.cut_reason(cuts, policy.limit, wait)
        if cuts >= policy.limit:
            self._run(tx, sql.DEAD_AFTER_CUTS, (cuts, reason, now, job))
            log.error("job %s: dead: %s", job, reason)
            return False
        if wait > 0:
            self._run(tx, sql.WAIT_AFTER_CUT, (cuts, now + wait, reason, now, job))
            return False
        self._run(tx, sql.COUNT_CUT, (cuts, reason, now, job))
        return True

    def extend(self, job: int, token: int, lease: float) -> bool:
        def op(tx: Tx) -> bool:
            now = self.clock()
            return self._run(tx, sql.EXTEND, (now + lease, now, job, token)).rowcount == 1

        return self._write(op).result()

    def finish(self, job: int, token: int, outcome: Finish) -> bool:
        _check(outcome)
        return self._write(lambda tx: self._finish(tx, job, token, outcome)).result()

    async def finish_async(self, job: int, token: int, outcome: Finish, executor: Executor | None = None) -> bool:
        _check(outcome)
        return await self._write_async(lambda tx: self._finish(tx, job, token, outcome), executor)

    def _finish(self, tx: Tx, job: int, token: int, outcome: Finish) -> bool:
        now = self.clock()
        reason = rows.reason(outcome.reason)
        won = (
            self._run(
                tx,
                sql.FINISH_JOB,
                (outcome.status, reason, outcome.next_attempt_at, outcome.max_attempts, now, job, token),
            ).rowcount
            == 1
        )
        if not won:
            reason = f"{reason} (too late: another worker had taken the job over; this result was not used)"
        step, trace = rows.storable(outcome.step), rows.trace_text(outcome.trace)
        self._run(tx, sql.FINISH_ATTEMPT, (now, outcome.status, reason, step, trace, job, token))
        return won

    def release(self, job: int, token: int) -> bool:
        def op(tx: Tx) -> bool:
            now = self.clock()
            released = self._run(tx, sql.RELEASE_JOB, (now, now, job, token)).rowcount == 1
            self._run(
                tx, sql.RELEASE_ATTEMPT, (now, "stopped before it finished (shutdown); it will run again", job, token)
            )
            return released

        return self._write(op).result()

    # ----------------------------------------------------------------------------------- replays

    def replay(self, job: int, lease: float, mapping_file: str | None = None) -> Claimed:
        def op(tx: Tx) -> Claimed:
            now = self.clock()
            delivery, new, status = self._replay_of(tx, job, mapping_file)
            new_id = self._insert_job(tx, delivery, new, now, lease_until=now + lease, replay_of=job)
            if status == "dead":  # parked no more: the replay carries it on
                self._run(tx, sql.MARK_REPLAYED, (new_id, now, job))
            return rows.claimed(self._one(tx, sql.CLAIMED, (new_id,)))

        return self._write(op).result()

    def reroute(self, delivery: int, jobs: Sequence[NewJob], lease: float) -> list[Claimed]:
        def op(tx: Tx) -> list[Claimed]:
            now = self.clock()
            self._check_ignored(tx, delivery)
            if not jobs:
                return []
            self._run(tx, sql.ACCEPT_DELIVERY, (delivery,))
            ids = [self._insert_job(tx, delivery, job, now, lease_until=now + lease) for job in jobs]
            return [rows.claimed(self._one(tx, sql.CLAIMED, (job_id,))) for job_id in ids]

        return self._write(op).result()

    def ping(self) -> None:
        self._write(lambda tx: self._run(tx, sql.PING, (str(self.clock()),))).result()

    # ----------------------------------------------------------------------------------- reading

    def counts(self) -> dict[str, int]:
        found = self._read(lambda tx: self._all(tx, sql.COUNTS))
        counts = dict.fromkeys(("pending", "running", "retry", "dead"), 0)
        counts.update({str(status): int(n) for status, n in found})
        return counts

    def jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        mapping: str | None = None,
        since: float | None = None,
        delivery: int | None = None,
        limit: int = 100,
    ) -> list[JobRow]:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if statuses:
            where.append(f"j.status IN ({sql.marks(len(statuses))})")
            params.extend(statuses)
        if mapping is not None:
            where.append("j.mapping = ?")
            params.append(mapping)
        if since is not None:
            where.append("d.received_at >= ?")
            params.append(since)
        if delivery is not None:
            where.append("j.delivery = ?")
            params.append(delivery)
        text = f"{sql.JOBS} WHERE {' AND '.join(where)} ORDER BY j.id DESC LIMIT ?"
        return [rows.job(row) for row in self._read(lambda tx: self._all(tx, text, (*params, limit)))]

    def deliveries(
        self, *, statuses: Sequence[str] = (), since: float | None = None, limit: int = 100
    ) -> list[DeliveryRow]:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if statuses:
            where.append(f"d.status IN ({sql.marks(len(statuses))})")
            params.extend(statuses)
        if since is not None:
            where.append("d.received_at >= ?")
            params.append(since)
        text = f"{sql.DELIVERIES} WHERE {' AND '.join(where)} ORDER BY d.id DESC LIMIT ?"
        return [rows.delivery(row) for row in self._read(lambda tx: self._all(tx, text, (*params, limit)))]

    def job(self, job: int) -> JobDetail:
        def op(tx: Tx) -> JobDetail:
            row = self._one(tx, f"{sql.JOBS} WHERE j.id = ?", (job,))
            if row is None:
                raise NotFound(f"there is no job {job}")
            found = rows.job(row)
            delivery = rows.delivery(self._one(tx, f"{sql.DELIVERIES} WHERE d.id = ?", (found.delivery,)))
            attempts = tuple(rows.attempt(a) for a in self._all(tx, sql.ATTEMPTS, (job,)))
            return JobDetail(found, delivery, attempts)

        return self._read(op)

    def delivery(self, delivery: int) -> DeliveryRow:
        row = self._read(lambda tx: self._one(tx, f"{sql.DELIVERIES} WHERE d.id = ?", (delivery,)))
        if row is None:
            raise NotFound(f"there is no delivery d{delivery}")
        return rows.delivery(row)


def _check(outcome: Finish) -> None:
    if (outcome.status == "retry") != (outcome.next_attempt_at is not None):
        raise ValueError("a retry needs next_attempt_at, and only a retry has one")
