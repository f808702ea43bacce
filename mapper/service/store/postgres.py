"""The shared store: one PostgreSQL database that any number of wlmap processes, on any machines, use at once.

Same tables and state machine as the embedded store (`base.SqlStore`); what this dialect adds for many writers:
- every call is its own short READ COMMITTED transaction on a pooled connection, in the calling thread
  (PostgreSQL groups concurrent commits into one WAL flush by itself);
- claims lock the rows they take with `FOR UPDATE SKIP LOCKED`: two workers never get the same job and neither
  waits for the other; the fencing token in every later UPDATE shuts out a worker whose lease ran out;
- ingests hold transaction-scoped advisory locks on the dedupe key and on the resource, so two listeners cannot
  both accept one body, and a resource's job ids are committed in the order they were handed out;
- times compared by the state machine come from the DATABASE's clock (its offset from ours is measured on every
  new connection), so a lease means the same on every machine whatever their clocks say;
- once an ingest that made jobs has committed, a NOTIFY tells the workers of other processes, which LISTEN
  (`store.notices`): an idle worker starts within milliseconds instead of at its next poll.

When the connection is lost: a transaction that failed before COMMIT cannot have committed, so it is run again
once on a fresh connection; a COMMIT whose answer was lost raises StoreUnavailable (the listener answers 503 and
the sender's retry is caught by the dedupe). While the database cannot be reached, calls fail at once with
StoreUnavailable and a new connection is tried at most every few seconds.
https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE,
https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS,
https://www.postgresql.org/docs/current/sql-notify.html
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Final, TypeVar

import psycopg
from psycopg import conninfo as pg_conninfo

from mapper.service.store import notices, schema
from mapper.service.store.base import SqlStore
from mapper.service.store.interface import Tx
from mapper.service.store.migrations import MIGRATIONS, Migration
from mapper.service.store.records import Ingested, NewDelivery, NewJob, StoreError, StoreUnavailable

T = TypeVar("T")
Connection = psycopg.Connection[Any]
log = logging.getLogger("wlmap.store")

MAX_CONNECTIONS: Final = 10  # per process
POOL_WAIT: Final = 10.0  # seconds a call waits for a free connection before it gives up (503)
MAX_BACKOFF: Final = 5.0  # seconds between connection attempts while the database is unreachable
_ATTEMPTS: Final = 3  # runs of one transaction: after a lost connection, a deadlock or a lost race
_RETRY_STATES: Final = frozenset({"40001", "40P01", "23505"})  # serialization failure, deadlock, unique key
_BEGIN_WRITE: Final = "BEGIN"  # READ COMMITTED: each statement sees what committed before it (after a lock)
_BEGIN_READ: Final = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"  # one snapshot for the whole read

# Connection parameters wlmap sets unless the URL does: give up connecting after 5 s, notice a dead peer
# within ~30 s even when nothing is being sent.
_CONNECT_DEFAULTS: Final = {
    "connect_timeout": "5",
    "application_name": "wlmap",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
# Session settings: no statement or lock wait holds a webhook for long, and a process that stalls inside a
# transaction (SIGSTOP, a paused VM) cannot hold its locks for ever.
_SESSION: Final = (
    "SELECT extract(epoch FROM clock_timestamp())::float8, set_config('statement_timeout', '30s', false), "
    "set_config('lock_timeout', '10s', false), set_config('idle_in_transaction_session_timeout', '60s', false)"
)
_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ' ' || %s, 0))"
_TRY_LOCK: Final = "SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || ' ' || %s, 0))"
_MIGRATE_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtextextended('wlmap migrate ' || current_schema(), 0))"


def plain(exc: BaseException) -> str:
    """A psycopg message's first line: libpq adds guesses ("Is the server running on that host...") below it."""
    lines = [part.strip() for part in str(exc).splitlines() if part.strip()]
    return lines[0] if lines else type(exc).__name__


def describe(conninfo: str) -> str:
    """The database as a URL without its password: `postgresql://user@host:port/db`."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "postgresql://(unreadable URL)"
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{params.get('host') or 'localhost'}{port}/{params.get('dbname') or ''}"


class DatabaseClock:
    """time.time() moved by the database's offset from it, measured at each new connection."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def measured(self, database_now: float, before: float, after: float) -> None:
        self.offset = database_now - (before + after) / 2


class _Connections:
    """A small pool: at most `size` connections, reused newest first; broken ones are dropped."""

    def __init__(self, connect: Callable[[], Connection], size: int) -> None:
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self.size = size
        self.closed = False

    def take(self) -> Connection:
        """A connection; StoreUnavailable when none frees up in time."""
        if not self._slots.acquire(timeout=POOL_WAIT):
            raise StoreUnavailable(f"all {self.size} connections to the database stayed busy for {POOL_WAIT:g} s")
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return self._connect()
        except BaseException:
            self._slots.release()
            raise

    def give(self, conn: Connection, reusable: bool) -> None:
        idle = psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            keep = reusable and not self.closed and not conn.closed and conn.info.transaction_status == idle
            if keep:
                self._idle.append(conn)
        if not keep:
            _close(conn)
        self._slots.release()

    def drop_idle(self, closing: bool = False) -> None:
        """Close every idle connection (after one was found dead, the others are likely dead too)."""
        with self._lock:
            self.closed = self.closed or closing
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: Connection) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.close()


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database (`postgresql://` URL or libpq conninfo); thread-safe; `close()`."""

    lock_clause = " FOR UPDATE OF j SKIP LOCKED"

    def __init__(
        self,
        conninfo: str,
        *,
        clock: Callable[[], float] | None = None,
        max_connections: int = MAX_CONNECTIONS,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self._database_clock = DatabaseClock() if clock is None else None
        super().__init__(clock or self._database_clock or time.time)
        self.where = describe(conninfo)
        try:
            given = pg_conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise StoreError(f"{self.where} is not a PostgreSQL URL wlmap can read: {plain(exc)}") from None
        self._conninfo = pg_conninfo.make_conninfo("", **{**_CONNECT_DEFAULTS, **given})
        self._statements: dict[str, str] = {}
        self._closed = False
        self._failures = 0  # connection attempts failed in a row
        self._retry_at = 0.0  # monotonic time before which no new connection is tried
        self._last_error = ""
        self._connected = False  # once connected, losing the database is logged (at start-up it is an error)
        self._state = threading.Lock()
        self._pool = _Connections(self._connect, max(1, max_connections))
        try:
            conn = self._pool.take()
        except StoreUnavailable as exc:
            raise StoreError(str(exc)) from None
        self._connected = True
        try:
            applied = self._prepare(conn, migrations)
        except psycopg.Error as exc:
            self._pool.give(conn, False)
            raise StoreError(f"cannot prepare the store {self.where}: {plain(exc)}") from None
        except BaseException:
            self._pool.give(conn, False)
            raise
        self._pool.give(conn, True)
        if applied:
            if applied[0] == 1:
                log.info("store %s: made anew (layout version %d)", self.where, applied[-1])
            else:
                log.info("store %s: layout upgraded from version %d to %d", self.where, applied[0] - 1, applied[-1])
        self._channel = self._read(lambda tx: f"wlmap {tx.execute('SELECT current_schema()').fetchone()[0]}")[:63]
        self._notices = notices.Sender(self._conninfo, self._channel)

    # ------------------------------------------------------------------------------ connections

    def _open(self) -> Connection:
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            before = time.time()
            row = conn.execute(_SESSION).fetchone()
            after = time.time()
        except BaseException:
            _close(conn)
            raise
        if self._database_clock is not None and row is not None:
            self._database_clock.measured(float(row[0]), before, after)
        return conn

    def _connect(self) -> Connection:
        """A new connection, unless the database was unreachable moments ago (then fail at once)."""
        with self._state:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise StoreUnavailable(
                    f"the database {self.where} is unreachable ({self._last_error}); trying again in {wait:.1f} s"
                )
        try:
            conn = self._open()
        except psycopg.Error as exc:
            with self._state:
                self._failures += 1
                self._retry_at = time.monotonic() + min(0.25 * 2 ** min(self._failures, 16), MAX_BACKOFF)
                self._last_error = plain(exc)
                first = self._failures == 1
            if first and self._connected:
                log.error("store: cannot connect to %s: %s", self.where, plain(exc))
            raise StoreUnavailable(f"cannot connect to the database {self.where}: {plain(exc)}") from None
        with self._state:
            if self._failures:
                log.warning("store: connected to %s again", self.where)
            self._failures, self._retry_at = 0, 0.0
        return conn

    def _prepare(self, conn: Connection, steps: Sequence[Migration]) -> list[int]:
        conn.execute("BEGIN")
        try:
            conn.execute(_MIGRATE_LOCK)  # replicas starting together: one upgrades, the others then see it done
            conn.execute("SET LOCAL statement_timeout = 0")  # building an index on a big table takes its time
            applied = self._migrate(conn, schema.POSTGRES, self.where, steps)
            conn.execute("COMMIT")
        except BaseException:
            if not conn.broken:
                conn.execute("ROLLBACK")
            raise
        return applied

    # ------------------------------------------------------------------------------ transactions

    def _sql(self, text: str) -> str:
        converted = self._statements.get(text)
        if converted is None:  # the statements are ours: no `?` or `%` inside a string literal
            converted = self._statements[text] = text.replace("?", "%s")
        return converted

    def ingest(self, delivery: NewDelivery, jobs: Sequence[NewJob], *, dedupe_window: float) -> Ingested:
        stored = super().ingest(delivery, jobs, dedupe_window=dedupe_window)
        if stored.jobs:
            self._notices.send()
        return stored

    def release(self, job: int, token: int) -> bool:
        released = super().release(job, token)
        if released:
            self._notices.send()  # another process may take it at once
        return released

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        return notices.listen(self._conninfo, self._channel, wake, self.where)

    def _lock_name(self, tx: Tx, key: str) -> None:
        tx.execute(_LOCK, (key,))

    def _try_lock_name(self, tx: Tx, key: str) -> bool:
        row = tx.execute(_TRY_LOCK, (key,)).fetchone()
        return bool(row and row[0])

    def _write(self, op: Callable[[Tx], T]) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(self._transaction(op, _BEGIN_WRITE))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def _read(self, op: Callable[[Tx], T]) -> T:
        return self._transaction(op, _BEGIN_READ)

    def _transaction(self, op: Callable[[Tx], T], begin: str) -> T:
        writing = begin == _BEGIN_WRITE
        verb = "write" if writing else "read"
        for attempt in range(1, _ATTEMPTS + 1):
            conn = self._pool.take()
            reusable = committing = False
            try:
                conn.execute(begin)
                value = op(conn)
                committing = True
                conn.execute("COMMIT")
                reusable = True
                return value
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    if committing and writing:
                        raise StoreUnavailable(
                            f"the connection to {self.where} was lost while committing; whether the write was "
                            f"kept is unknown ({plain(exc)})"
                        ) from None
                    self._pool.drop_idle()
                    if attempt < _ATTEMPTS:
                        log.warning(
                            "store: connection to %s lost (%s); trying again on a new one", self.where, plain(exc)
                        )
                        continue
                    raise StoreUnavailable(f"the connection to {self.where} was lost: {plain(exc)}") from None
                reusable = _rollback(conn)
                if exc.sqlstate in _RETRY_STATES and attempt < _ATTEMPTS:
                    continue
                raise StoreUnavailable(f"the store cannot {verb}: {plain(exc)}") from None
            except BaseException:  # not the database's doing (not found, a bug): undo and pass it on
                reusable = not conn.broken and _rollback(conn)
                raise
            finally:
                self._pool.give(conn, reusable)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def close(self) -> None:
        with self._state:
            self._closed = True
        self._notices.close()
        self._pool.drop_idle(closing=True)


def _rollback(conn: Connection) -> bool:
    """Roll back an open transaction; whether the connection is fit to be used again."""
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        return False
    return True
