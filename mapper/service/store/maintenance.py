"""Long upkeep of the SQL stores in small, paced transactions: pruning old events, taking back dead holders' leases."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final, TypeVar

from mapper.service.store import holders, sql
from mapper.service.store.dialect import SqlDialect
from mapper.service.store.interface import Tx
from mapper.service.store.records import FINISHED, PRUNABLE, PRUNED, Pruned

T = TypeVar("T")

PRUNE_BATCH: Final = 200  # jobs (or webhooks without a job) deleted per transaction
# After each batch a prune rests as long as the batch took (at least this): webhooks, claims and results, in this
# process or another, get the database in between (bench/prune_load.py: ack p99 while pruning).
PRUNE_REST: Final = 0.01


class Maintenance(SqlDialect):
    """Pruning and taking back leases, for SqlStore."""

    def prune_events(self, older_than: float, statuses: Sequence[str] = PRUNED) -> Pruned:
        unknown = sorted(set(statuses) - set(PRUNABLE))
        if unknown:
            raise ValueError(f"cannot prune {', '.join(unknown)}: only {', '.join(PRUNABLE)}")
        of_jobs = [status for status in statuses if status in FINISHED]
        of_deliveries = [status for status in statuses if status not in FINISHED]
        jobs = deliveries = 0
        while of_jobs:
            pruned, went = self._paced(partial(self._prune_jobs, of_jobs, older_than))
            if not pruned:
                break
            jobs, deliveries = jobs + pruned, deliveries + went
        while of_deliveries:
            went = self._paced(partial(self._prune_deliveries, of_deliveries, older_than))
            if not went:
                break
            deliveries += went
        return Pruned(jobs, deliveries, self.give_back() if jobs or deliveries else 0)

    def _paced(self, op: Callable[[Tx], T]) -> T:
        """One batch of a long maintenance task in its own transaction, then a rest as long as it took."""
        started = time.monotonic()
        value = self._write(op).result()
        self._after_batch()
        time.sleep(max(time.monotonic() - started, PRUNE_REST))
        return value

    def _after_batch(self) -> None:
        """What the dialect does between two batches (SQLite: a checkpoint, off the writers' path)."""

    def _prune_jobs(self, statuses: Sequence[str], older_than: float, tx: Tx) -> tuple[int, int]:
        if not self._try_lock_name(tx, "prune"):  # another replica is at it
            return 0, 0
        text = sql.PRUNABLE_JOBS.format(marks=sql.marks(len(statuses)))
        found = self._all(tx, text, (*statuses, older_than, PRUNE_BATCH))
        if not found:
            return 0, 0
        ids, delivery_ids = [int(row[0]) for row in found], sorted({int(row[1]) for row in found})
        self._run(tx, sql.DELETE_ATTEMPTS.format(marks=sql.marks(len(ids))), ids)
        self._run(tx, sql.DELETE_JOBS.format(marks=sql.marks(len(ids))), ids)
        gone = self._all(tx, sql.DELETE_DELIVERIES.format(marks=sql.marks(len(delivery_ids))), delivery_ids)
        return len(ids), len(gone)

    def _prune_deliveries(self, statuses: Sequence[str], older_than: float, tx: Tx) -> int:
        if not self._try_lock_name(tx, "prune"):
            return 0
        text = sql.PRUNABLE_DELIVERIES.format(marks=sql.marks(len(statuses)))
        ids = [int(row[0]) for row in self._all(tx, text, (*statuses, older_than, PRUNE_BATCH))]
        if not ids:
            return 0
        return len(self._all(tx, sql.DELETE_DELIVERIES.format(marks=sql.marks(len(ids))), ids))

    def reclaim(self) -> list[int]:
        held = [str(row[0]) for row in self._read(lambda tx: self._all(tx, sql.HOLDERS))]
        gone = [holder for holder in held if holders.gone(holder)]
        if not gone:
            return []

        def op(tx: Tx) -> list[int]:
            now = self.clock()
            expired = now - 1.0  # CLAIMABLE takes a lease that ended before now
            return [int(row[0]) for holder in gone for row in self._all(tx, sql.EXPIRE_HELD, (expired, holder, now))]

        return sorted(self._write(op).result())
