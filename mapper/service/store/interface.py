"""What every store offers (the `Store` interface), and the DB-API shapes the SQL state machine runs on."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from functools import partial
from typing import Any, Protocol, TypeVar

from mapper.service.store.collecting import Collecting
from mapper.service.store.operator import OperatorStore
from mapper.service.store.records import (
    CUTS,
    PRUNED,
    Claimed,
    Cuts,
    DeliveryRow,
    Finish,
    Ingested,
    JobDetail,
    JobRow,
    NewDelivery,
    NewJob,
    Pruned,
    StoreError,
)

T = TypeVar("T")
Clock = Callable[[], float]


async def run_blocking(executor: Executor | None, fn: Callable[[], T]) -> T:
    """fn() in a thread: store calls wait on the disk or the database, the event loop must not."""
    return await asyncio.get_running_loop().run_in_executor(executor, fn)


class Cursor(Protocol):
    """The part of a DB-API cursor the rules use (sqlite3 and psycopg both have it)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """A connection inside an open transaction."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


class Store(Collecting, OperatorStore, ABC):
    """The durable queue: stored webhooks, the jobs they caused, and every attempt at those jobs."""

    clock: Clock

    @abstractmethod
    def ingest(self, delivery: NewDelivery, jobs: Sequence[NewJob], *, dedupe_window: float) -> Ingested:
        """Store a verified delivery and its jobs in one durable transaction; returns once committed."""

    async def ingest_async(
        self, delivery: NewDelivery, jobs: Sequence[NewJob], *, dedupe_window: float, executor: Executor | None = None
    ) -> Ingested:
        """`ingest` for an event loop: returns once committed, without holding up the loop meanwhile."""
        return await run_blocking(executor, partial(self.ingest, delivery, jobs, dedupe_window=dedupe_window))

    @abstractmethod
    def claim(self, limit: int, lease: float, cuts: Cuts = CUTS) -> list[Claimed]:
        """Lease up to `limit` runnable jobs for `lease` seconds, oldest first; a job with cut attempts comes
        last (run it alone), and `cuts` says what happens to a job whose lease ran out."""

    async def claim_async(
        self, limit: int, lease: float, executor: Executor | None = None, cuts: Cuts = CUTS
    ) -> list[Claimed]:
        """`claim` for an event loop."""
        return await run_blocking(executor, partial(self.claim, limit, lease, cuts))

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake()` (from another thread) whenever another process stores jobs; returns the way to stop.

        The embedded store has no other process to hear from (the listener beside the workers wakes them
        directly): nothing to do. PostgreSQL: LISTEN/NOTIFY."""
        return lambda: None

    @abstractmethod
    def reclaim(self) -> list[int]:
        """Expire the leases of holders that are provably gone (store.holders); the jobs whose lease it ended."""

    @abstractmethod
    def extend(self, job: int, token: int, lease: float) -> bool:
        """Push the lease on; False when the job is no longer this token's."""

    @abstractmethod
    def finish(self, job: int, token: int, outcome: Finish) -> bool:
        """Record an attempt's outcome; False (job unchanged) when the token has been fenced out."""

    async def finish_async(self, job: int, token: int, outcome: Finish, executor: Executor | None = None) -> bool:
        """`finish` for an event loop."""
        return await run_blocking(executor, partial(self.finish, job, token, outcome))

    @abstractmethod
    def release(self, job: int, token: int) -> bool:
        """Give a running job back unfinished (shutdown): it is claimable again at once."""

    @abstractmethod
    def replay(self, job: int, lease: float, mapping_file: str | None = None) -> Claimed:
        """A new job for the same stored webhook and mapping, already leased to the caller."""

    @abstractmethod
    def reroute(self, delivery: int, jobs: Sequence[NewJob], lease: float) -> list[Claimed]:
        """Jobs for an ignored delivery that mappings now want, already leased to the caller."""

    def prune(self, older_than: float, statuses: Sequence[str] = PRUNED) -> int:
        """`prune_events`; how many deliveries (stored webhooks) went."""
        return self.prune_events(older_than, statuses).deliveries

    @abstractmethod
    def prune_events(self, older_than: float, statuses: Sequence[str] = PRUNED) -> Pruned:
        """Delete the jobs in `statuses` last changed before `older_than` with their attempts, each delivery
        with its last job, and the deliveries in `statuses` (ignored, duplicate) received before then; then
        give the space back (see `give_back`)."""

    def give_back(self) -> int:
        """Return the space of deleted rows to the operating system; the bytes returned (0 when the database
        does it by itself)."""
        return 0

    @property
    def gives_space_back(self) -> bool:
        """Whether `give_back` can shrink the store (an SQLite file made before wlmap did so cannot)."""
        return True

    def vacuum(self) -> int:
        """Rewrite the whole store compactly; the bytes it shrank by. StoreError where wlmap cannot."""
        raise StoreError(
            "only an SQLite store is vacuumed by wlmap; PostgreSQL makes deleted rows' space reusable by itself "
            "(autovacuum), and VACUUM FULL, which returns it to the disk, locks the tables: run it yourself"
        )

    @abstractmethod
    def ping(self) -> None:
        """Prove the store can commit a write; raises StoreUnavailable if not."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """How many jobs are pending, running, waiting to retry and dead."""

    @abstractmethod
    def jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        mapping: str | None = None,
        since: float | None = None,
        delivery: int | None = None,
        limit: int = 100,
    ) -> list[JobRow]:
        """Jobs, newest first."""

    @abstractmethod
    def deliveries(
        self, *, statuses: Sequence[str] = (), since: float | None = None, limit: int = 100
    ) -> list[DeliveryRow]:
        """Deliveries, newest first."""

    @abstractmethod
    def job(self, job: int) -> JobDetail:
        """One job with its delivery and attempts; NotFound if there is none."""

    @abstractmethod
    def delivery(self, delivery: int) -> DeliveryRow:
        """One delivery; NotFound if there is none."""

    @abstractmethod
    def close(self) -> None:
        """Finish pending writes and let go of the database."""
