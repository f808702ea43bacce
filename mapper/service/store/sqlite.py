"""The embedded store: one SQLite file (WAL, synchronous=FULL), written in group commits.

Every write from workers and tools goes through a queue to one writer thread. The writer takes all that is
waiting, runs each in its own SAVEPOINT inside one transaction, commits once (one fsync for the whole group),
and only then resolves each caller's future: a caller hears "done" only after ITS rows are durable.

Webhooks (`ingest_async`) are group-committed apart from that queue, on the event loop's own thread and a
connection of their own (`loop_groups.py`); the two connections take turns through a lock in this process.
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
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

from mapper.service.store import schema
from mapper.service.store.interface import Clock, Tx
from mapper.service.store.loop_groups import BUSY_TIMEOUT_MS, LoopGroups, plain, unavailable
from mapper.service.store.migrations import MIGRATIONS, Migration
from mapper.service.store.records import StoreError, StoreUnavailable

T = TypeVar("T")
log = logging.getLogger("wlmap.store")

MAX_BATCH: Final = 256  # writes committed together at most
WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024  # bytes the WAL file keeps after a checkpoint
GIVE_BACK_PAGES: Final = 256  # pages returned to the file system per transaction (1 MB of 4 KB pages)
INCREMENTAL: Final = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
CHECKPOINT_EVERY: Final = 6  # batches of a prune between two checkpoints of its own


@dataclass
class _Op:
    fn: Callable[[Tx], Any]
    future: Future[Any]


class SqliteStore(LoopGroups):
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
        self._batches = 0  # of maintenance tasks, for `_after_batch`
        self._init_groups()
        conn = self._open()
        try:
            self._prepare(conn, migrations)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot use the store {self.path}: {plain(exc)}") from None
        except StoreError:
            conn.close()
            raise
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name="wlmap-store-writer", daemon=True)
        self._writer.start()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {plain(exc)}") from None
        return conn

    def _prepare(self, conn: sqlite3.Connection, steps: Sequence[Migration]) -> None:
        if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
            # Only a file without tables takes this (before WAL mode is set, too); an older file gets it from
            # `wlmap prune --vacuum` (VACUUM rewrites the whole file). https://www.sqlite.org/pragma.html#pragma_auto_vacuum
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot use the store {self.path}: SQLite would not switch it to WAL mode")
        self._configure(conn, BUSY_TIMEOUT_MS)
        conn.execute("BEGIN IMMEDIATE")  # the write lock: another process opening the file waits for us
        try:
            applied = self._migrate(conn, schema.SQLITE, self.path, steps)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if applied:
            if applied[0] == 1:
                log.info("store %s: made anew (layout version %d)", self.path, applied[-1])
            else:
                log.info("store %s: layout upgraded from version %d to %d", self.path, applied[0] - 1, applied[-1])

    def _configure(self, conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
        """What every writing connection needs: these settings belong to a connection, not to the file."""
        conn.execute("PRAGMA synchronous = FULL")  # with WAL: a commit survives power loss, not just a crash
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        # After a checkpoint the WAL file is cut back to this size: a prune must not leave it at its peak.
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
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
                got = self._turn.acquire(timeout=BUSY_TIMEOUT_MS / 1000)  # else SQLite's busy wait decides
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
            error = unavailable(exc) if isinstance(exc, sqlite3.Error) else exc
            if not isinstance(exc, sqlite3.Error):
                log.error("store write failed", exc_info=exc)
            for op in live:
                op.future.set_exception(error)
            return
        for op, value, failure in outcomes:
            if failure is None:
                op.future.set_result(value)
            elif isinstance(failure, sqlite3.Error):
                op.future.set_exception(unavailable(failure))
            else:
                op.future.set_exception(failure)

    async def _write_async(self, op: Callable[[Tx], T], executor: Executor | None) -> T:
        return await asyncio.wrap_future(self._write(op))  # the writer thread resolves it; no pool thread waits

    # ------------------------------------------------------------------------------ space

    @property
    def gives_space_back(self) -> bool:
        return self._read(lambda tx: int(tx.execute("PRAGMA auto_vacuum").fetchone()[0])) == INCREMENTAL

    def give_back(self) -> int:
        """Free pages back to the file system, a few at a time between the other writes (incremental vacuum);
        the file shrinks at the next checkpoint of the WAL."""

        def step(tx: Tx) -> int:
            free = int(tx.execute("PRAGMA freelist_count").fetchone()[0])
            if free == 0 or int(tx.execute("PRAGMA auto_vacuum").fetchone()[0]) != INCREMENTAL:
                return 0
            pages = min(free, GIVE_BACK_PAGES)
            for _ in range(pages):  # one page per step: sqlite3 steps a statement without result rows once
                tx.execute("PRAGMA incremental_vacuum")
            return pages * int(tx.execute("PRAGMA page_size").fetchone()[0])

        freed = 0
        while step_freed := self._paced(step):
            freed += step_freed
        if freed:
            self._checkpoint()
        return freed

    def _after_batch(self) -> None:
        # A prune writes the WAL full again and again (~70 pages a batch, at most ~170). Copied back every few
        # batches, on a connection of its own, it stays below the size (1,000 pages) at which a commit of the
        # writer or of the webhooks' group would checkpoint it while the next webhooks wait. Measured on the
        # writer's transactions while pruning 200k jobs: p99 17.7 ms without (two runs), 12.7-14.2 ms with.
        self._batches += 1
        if self._batches % CHECKPOINT_EVERY == 0:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the WAL into the file now (PASSIVE: waits for nobody), so that the file shrinks."""
        with contextlib.suppress(sqlite3.Error):
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                conn.close()

    def vacuum(self) -> int:
        """Rewrite the file (VACUUM) with incremental vacuum switched on; the bytes it shrank by. It holds the
        write lock until done: a service on the same file answers 503 meanwhile."""
        before = Path(self.path).stat().st_size
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot vacuum the store {self.path}: {plain(exc)}") from None
        finally:
            conn.close()
        return max(0, before - Path(self.path).stat().st_size)

    # ------------------------------------------------------------------------------ reading

    def _read(self, op: Callable[[Tx], T]) -> T:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read the store {self.path}: {plain(exc)}") from None
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")  # one snapshot for every statement of op
            return op(conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read the store {self.path}: {plain(exc)}") from None
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._writer.join()
        self._close_groups()
