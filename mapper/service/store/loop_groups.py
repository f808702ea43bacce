"""Webhooks group-committed on the event loop's own thread: the SQLite store's fast path for `ingest_async`.

The webhooks that arrive in one turn of the event loop are written by `group.ingest` (a handful of statements
for the whole group) on the loop's thread, on a connection of their own; the COMMIT (the WAL write and fsync),
and waiting for SQLite's write lock when someone else holds it, happen in the committer thread while the loop
goes on with HTTP; the next group waits for the one in flight. Why not the store's writer thread: there every
statement let go of the GIL and took it back while the loop was busy with HTTP, hundreds of hand-overs per
group (bench/service_load.py ack ratio 0.32-0.35x; this way ~0.55x).

The loop's connection and the writer thread's take turns through `_turn`, a lock in this process: SQLite's
own busy handler would make the waiting one sleep 1, 2, 5, 10... ms between tries (p99 acknowledgement
latency under load: 58 ms polling, 15-30 ms with the lock). A group with a failing webhook (a bug) is rolled
back and handed to the writer thread, one webhook at a time in its own savepoint; so is a group gathered on a
second event loop while the first one's is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

from mapper.service.store import group
from mapper.service.store.base import SqlStore
from mapper.service.store.bucket_records import NewItem
from mapper.service.store.interface import Tx
from mapper.service.store.records import Ingested, NewDelivery, NewJob, StoreError, StoreUnavailable
from mapper.service.store.turns import Turn

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 10_000


def plain(exc: sqlite3.Error) -> str:
    """SQLite's message, or the error's name when it has none."""
    return str(exc) or type(exc).__name__


def unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    return StoreUnavailable(f"the store cannot write: {plain(exc)}")


@dataclass
class _LoopOp:
    request: group.Request
    future: asyncio.Future[Ingested]


def _one_by_one(store: SqlStore, request: group.Request) -> Callable[[Tx], Ingested]:
    """The request as the writer thread runs it: alone, in its own savepoint."""
    return partial(store._ingest, delivery=request.delivery, jobs=request.jobs, window=request.window)


class LoopGroups(SqlStore):
    """The group-commit half of the SQLite store; `SqliteStore` is the rest (writer thread, reads, layout)."""

    _closed: bool
    path: str

    @abstractmethod
    def _configure(self, conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
        """The settings every writing connection needs."""

    def _init_groups(self) -> None:
        self._group: list[_LoopOp] = []  # ingests waiting for the loop's next group commit
        self._group_loop: asyncio.AbstractEventLoop | None = None
        self._loop_conn: sqlite3.Connection | None = None
        self._loop_lock = threading.Lock()  # the loop connection is used by one thread at a time
        self._turn = Turn(self.path)  # whose turn it is to write: this process's two connections, and other processes
        self._group_turn = False  # the group in flight holds `_turn`
        self._committing = False  # a group is in flight (its BEGIN or COMMIT may be in the committer thread)
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wlmap-store-commit")

    def _close_groups(self) -> None:
        """After the writer thread has stopped: let a COMMIT in flight end, then close the loop's connection."""
        self._committer.shutdown(wait=True)
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        self._turn.close()

    async def ingest_async(
        self, delivery: NewDelivery, jobs: Sequence[NewJob], *, dedupe_window: float, executor: Executor | None = None
    ) -> Ingested:
        """Returns once committed with the other webhooks of its group (see the module docstring)."""
        request = group.Request(delivery, tuple(jobs), dedupe_window)
        loop = asyncio.get_running_loop()
        if self._group_loop is not loop:
            # A group gathering or in flight on another event loop (or left by one that was closed meanwhile):
            # not ours to join or wait for. The writer thread takes this webhook on its own.
            if self._group or self._committing:
                return await asyncio.wrap_future(self._write(_one_by_one(self, request)))
            self._group_loop = loop
        future: asyncio.Future[Ingested] = loop.create_future()
        self._group.append(_LoopOp(request, future))
        if len(self._group) == 1:
            loop.call_soon(self._commit_group)
        return await future

    def _commit_group(self) -> None:
        """On the loop: start a transaction for what has gathered, unless a group is in flight already.

        The statements run here (a handful per group, see `group`); the COMMIT (the WAL write and fsync), and
        waiting for SQLite's write lock when the writer thread or another process holds it, happen in the
        committer thread while the loop goes on with HTTP.
        """
        if self._committing:  # the group in flight starts this one when it ends
            return
        gathered, self._group = self._group, []
        live = [op for op in gathered if not op.future.done()]  # a cancelled caller's webhook is not stored
        if not live:
            return
        if not self._loop_lock.acquire(blocking=False):  # another thread's loop is committing on it
            self._hand_over(live)
            return
        self._committing = True
        if not self._turn.acquire(blocking=False):  # the writer thread is writing: wait in the committer
            self._in_committer(self._begin, partial(self._begun, live), live)
            return
        self._group_turn = True
        try:  # the write lock is free nearly always: take it here, without a trip to the committer
            if self._closed:
                raise StoreUnavailable("the store is closed")
            self._loop_connection().execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._release_turn()
            if _busy(exc):  # another process is writing: wait for it in the committer
                self._in_committer(self._begin, partial(self._begun, live), live)
            else:
                self._end_group(live, error=unavailable(exc))
            return
        except (sqlite3.Error, StoreError) as exc:
            self._release_turn()
            self._end_group(live, error=unavailable(exc) if isinstance(exc, sqlite3.Error) else exc)
            return
        self._begun(live)

    def _in_committer(self, step: Callable[[], None], then: Callable[[], None], live: list[_LoopOp]) -> None:
        """Run `step` in the committer thread, then `then` on the loop; a failure ends the group with it."""

        def settle(done: asyncio.Future[None]) -> None:
            failure = StoreUnavailable("the store is closed") if done.cancelled() else done.exception()
            if failure is None:
                then()
                return
            self._end_group(live, error=unavailable(failure) if isinstance(failure, sqlite3.Error) else failure)

        try:
            done = asyncio.get_running_loop().run_in_executor(self._committer, step)
        except RuntimeError:  # the committer was shut down: the store is closed
            self._end_group(live, error=StoreUnavailable("the store is closed"))
            return
        done.add_done_callback(settle)

    def _begin(self) -> None:
        """In the committer thread: wait for this process's writer, then for SQLite's write lock."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        self._group_turn = self._turn.acquire(timeout=BUSY_TIMEOUT_MS / 1000)
        conn = self._loop_connection()
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                conn.execute("PRAGMA busy_timeout = 0")  # on the loop, never wait
        except BaseException:
            self._release_turn()
            raise

    def _commit_group_writes(self, conn: sqlite3.Connection) -> None:
        """In the committer thread: COMMIT (or roll back), then let the writer thread have its turn."""
        try:
            _commit(conn)
        finally:
            self._release_turn()

    def _release_turn(self) -> None:
        if self._group_turn:
            self._group_turn = False
            self._turn.release()

    def _begun(self, live: list[_LoopOp]) -> None:
        """On the loop, holding the write lock: the group's statements, then the COMMIT in the committer."""
        conn = self._loop_connection()
        try:
            now = self.clock()
            place = partial(self._place_in_group, conn, now)
            values = group.ingest(conn, [op.request for op in live], now, self.index_hints, place)
        except Exception as exc:
            _roll_back(conn)
            self._release_turn()
            if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError):  # the database is failing
                self._end_group(live, error=unavailable(exc))
            else:  # one webhook's problem (a bug): the writer thread runs each in its own savepoint
                self._end_group(live, hand_over=True)
            return
        self._in_committer(partial(self._commit_group_writes, conn), partial(self._end_group, live, values), live)

    def _end_group(
        self,
        live: list[_LoopOp],
        values: list[Ingested] | None = None,
        *,
        error: BaseException | None = None,
        hand_over: bool = False,
    ) -> None:
        """On the loop: answer the group's callers and start the next group."""
        self._committing = False
        self._loop_lock.release()
        if hand_over:
            self._hand_over(live)
        elif values is not None:
            for op, value in zip(live, values, strict=True):
                _settle(op.future, value)
        else:
            for op in live:
                _settle(op.future, error=error or StoreUnavailable("the store cannot write"))
        if self._group:
            self._commit_group()

    def _place_in_group(self, conn: sqlite3.Connection, now: float, item: NewItem, source: int) -> int:
        return self._place(conn, item, source, now).bucket

    def _loop_connection(self) -> sqlite3.Connection:
        if self._loop_conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
            try:
                self._configure(conn, 0)  # never wait on the loop: `_begin` waits in the committer
            except BaseException:
                conn.close()
                raise
            self._loop_conn = conn
        return self._loop_conn

    def _hand_over(self, live: list[_LoopOp]) -> None:
        for op in live:
            try:
                handed = asyncio.wrap_future(self._write(_one_by_one(self, op.request)))
            except StoreError as exc:
                _settle(op.future, error=exc)
                continue
            handed.add_done_callback(partial(_copy_outcome, op.future))


def _commit(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        _roll_back(conn)
        raise


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _roll_back(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _settle(future: asyncio.Future[T], value: Any = None, *, error: BaseException | None = None) -> None:
    if future.done():  # the caller gave up waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _copy_outcome(future: asyncio.Future[T], source: asyncio.Future[T]) -> None:
    if source.cancelled():
        future.cancel()
    elif (error := source.exception()) is not None:
        _settle(future, error=error)
    else:
        _settle(future, source.result())
