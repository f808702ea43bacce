"""The embedded store: one SQLite file (WAL, synchronous=FULL), written in group commits.

Every write from workers and tools goes through a queue to one writer thread. The writer takes all that is
waiting, runs each in its own SAVEPOINT inside one transaction, commits once (one fsync for the whole group),
and only then resolves each caller's future: a caller hears "done" only after ITS rows are durable.

Webhooks (`ingest_async`) are group-committed apart from that queue: the webhooks that arrive in one turn of
the event loop are written by `group.ingest` (a handful of statements for the whole group) on the loop's own
thread, on a second connection; waiting for SQLite's write lock (BEGIN IMMEDIATE) and the COMMIT (the WAL
write and fsync) happen in a helper thread while the loop goes on with HTTP, and the next group waits for the
one in flight. Through the writer thread, every statement let go of the GIL and took it back while the loop
was busy with HTTP, hundreds of hand-overs per group (bench/service_load.py ack ratio 0.32-0.35x; this way
0.57-0.58x). A group with a failing webhook (a bug) is rolled back and handed to the writer thread, one
webhook at a time in its own savepoint. The two connections take turns through a lock in this process: SQLite's
own busy handler would make the waiting one sleep 1, 2, 5, 10... ms between tries (p99 acknowledgement
latency under load: 58 ms polling, 22-29 ms with the lock).
https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html#pragma_synchronous
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

from mapper.store import group, schema
from mapper.store.base import Clock, SqlStore, Tx
from mapper.store.migrations import MIGRATIONS, Migration
from mapper.store.records import Ingested, NewDelivery, NewJob, StoreError, StoreUnavailable

T = TypeVar("T")
log = logging.getLogger("wlmap.store")

MAX_BATCH: Final = 256  # writes committed together at most
_BUSY_TIMEOUT_MS: Final = 10_000


@dataclass
class _Op:
    fn: Callable[[Tx], Any]
    future: Future[Any]


@dataclass
class _LoopOp:
    request: group.Request
    future: asyncio.Future[Ingested]


def _one_by_one(store: SqlStore, request: group.Request) -> Callable[[Tx], Ingested]:
    """The request as the writer thread runs it: alone, in its own savepoint."""
    return partial(store._ingest, delivery=request.delivery, jobs=request.jobs, window=request.window)


def _plain(exc: sqlite3.Error) -> str:
    return str(exc) or type(exc).__name__


def _unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    return StoreUnavailable(f"the store cannot write: {_plain(exc)}")


class SqliteStore(SqlStore):
    """The store in one SQLite file; thread-safe; `close()` when done."""

    # Without statistics SQLite's planner picks jobs_by_status for the two per-webhook queries (see sql.py).
    index_hints: ClassVar[dict[str, str]] = {
        "by_resource": " INDEXED BY jobs_active_by_resource",
        "by_time": " INDEXED BY jobs_active_by_time",
        "by_body": " INDEXED BY deliveries_without_id_by_dedupe_key",
    }

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = time.time,
        max_bytes: int | None = None,
        max_batch: int = MAX_BATCH,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        super().__init__(clock)
        self.path = str(path)
        self._max_bytes = max_bytes
        self._max_batch = max(1, max_batch)
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._group: list[_LoopOp] = []  # ingests waiting for the loop's next group commit
        self._group_loop: asyncio.AbstractEventLoop | None = None
        self._loop_conn: sqlite3.Connection | None = None
        self._loop_lock = threading.Lock()  # the loop connection is used by one thread at a time
        # Whose turn it is to write, between this process's two connections. SQLite alone would make the second
        # one poll, sleeping 1, 2, 5, 10... ms between tries (its busy handler); this lock wakes it at once.
        self._turn = threading.Lock()
        self._group_turn = False  # the group in flight holds `_turn`
        self._committing = False  # a group's COMMIT is running in the committer thread
        # COMMIT writes the group's pages to the WAL and waits for fsync: in this thread the loop goes on with
        # HTTP meanwhile (the statements before it stay on the loop: each would hand the GIL over twice).
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wlmap-store-commit")
        conn = self._open()
        try:
            self._prepare(conn, migrations)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot use the store {self.path}: {_plain(exc)}") from None
        except StoreError:
            conn.close()
            raise
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name="wlmap-store-writer", daemon=True)
        self._writer.start()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {_plain(exc)}") from None
        return conn

    def _prepare(self, conn: sqlite3.Connection, steps: Sequence[Migration]) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot use the store {self.path}: SQLite would not switch it to WAL mode")
        self._configure(conn, _BUSY_TIMEOUT_MS)
        conn.execute("BEGIN IMMEDIATE")  # the write lock: another process opening the file waits for us
        try:
            applied = self._migrate(conn, schema.SQLITE, self.path, steps)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if applied:
            log.info("store %s: layout upgraded to version %d", self.path, applied[-1])

    def _configure(self, conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
        """What every writing connection needs: these settings belong to a connection, not to the file."""
        conn.execute("PRAGMA synchronous = FULL")  # with WAL: a commit survives power loss, not just a crash
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        if self._max_bytes is not None:
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            conn.execute(f"PRAGMA max_page_count = {max(1, self._max_bytes // page_size)}")

    # ------------------------------------------------------------------------------ writing

    def _write(self, op: Callable[[Tx], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            self._queue.put(_Op(op, future))
        return future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                got = self._turn.acquire(timeout=_BUSY_TIMEOUT_MS / 1000)  # else SQLite's busy wait decides
                try:
                    self._commit(conn, batch)
                finally:
                    if got:
                        self._turn.release()
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        live = [op for op in batch if op.future.set_running_or_notify_cancel()]
        outcomes: list[tuple[_Op, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in live:
                conn.execute("SAVEPOINT op")
                try:
                    value = op.fn(conn)
                except (sqlite3.OperationalError, sqlite3.InternalError):
                    raise  # the database itself is failing: the whole group fails
                except Exception as exc:  # this caller's problem only (not found, a bug): undo its part alone
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((op, None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((op, value, None))
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            error = _unavailable(exc) if isinstance(exc, sqlite3.Error) else exc
            if not isinstance(exc, sqlite3.Error):
                log.error("store write failed", exc_info=exc)
            for op in live:
                op.future.set_exception(error)
            return
        for op, value, failure in outcomes:
            if failure is None:
                op.future.set_result(value)
            elif isinstance(failure, sqlite3.Error):
                op.future.set_exception(_unavailable(failure))
            else:
                op.future.set_exception(failure)

    async def _write_async(self, op: Callable[[Tx], T], executor: Executor | None) -> T:
        return await asyncio.wrap_future(self._write(op))  # the writer thread resolves it; no pool thread waits

    # ------------------------------------------------------------------------------ webhooks, in groups

    async def ingest_async(
        self, delivery: NewDelivery, jobs: Sequence[NewJob], *, dedupe_window: float, executor: Executor | None = None
    ) -> Ingested:
        """Returns once committed with the other webhooks of its group (see the module docstring)."""
        request = group.Request(delivery, tuple(jobs), dedupe_window)
        loop = asyncio.get_running_loop()
        if self._group_loop is not loop:
            if self._group:  # a group is gathering on another event loop: not ours to join
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
                self._end_group(live, error=_unavailable(exc))
            return
        except (sqlite3.Error, StoreError) as exc:
            self._release_turn()
            self._end_group(live, error=_unavailable(exc) if isinstance(exc, sqlite3.Error) else exc)
            return
        self._begun(live)

    def _in_committer(self, step: Callable[[], None], then: Callable[[], None], live: list[_LoopOp]) -> None:
        """Run `step` in the committer thread, then `then` on the loop; a failure ends the group with it."""

        def settle(done: asyncio.Future[None]) -> None:
            failure = StoreUnavailable("the store is closed") if done.cancelled() else done.exception()
            if failure is None:
                then()
                return
            self._end_group(live, error=_unavailable(failure) if isinstance(failure, sqlite3.Error) else failure)

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
        self._group_turn = self._turn.acquire(timeout=_BUSY_TIMEOUT_MS / 1000)
        conn = self._loop_connection()
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
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
            values = group.ingest(conn, [op.request for op in live], self.clock(), self.index_hints)
        except Exception as exc:
            _roll_back(conn)
            self._release_turn()
            if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError):  # the database is failing
                self._end_group(live, error=_unavailable(exc))
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

    # ------------------------------------------------------------------------------ reading

    def _read(self, op: Callable[[Tx], T]) -> T:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read the store {self.path}: {_plain(exc)}") from None
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")  # one snapshot for every statement of op
            return op(conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read the store {self.path}: {_plain(exc)}") from None
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._writer.join()
        self._committer.shutdown(wait=True)  # a COMMIT in flight ends first
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None


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
