"""PostgreSQL LISTEN/NOTIFY: tell the workers of other processes that jobs were stored, and hear it.

Split roles (`--role listener` / `--role worker` on one database) used to find work only by polling (0.5 s).
Now the listener's store sends a NOTIFY on the schema's channel once an ingest that made jobs has committed,
and a worker's store LISTENs on a connection of its own and wakes the worker: an idle worker starts within a
few milliseconds (bench/pg_idle_latency.py). Polling stays as the fallback while either connection is down.

The NOTIFY goes out from a thread of its own, after the COMMIT, one for every ingest that committed while the
last was being sent. Inside each ingest's transaction it serialised the commits (PostgreSQL takes a lock on its
notification queue at COMMIT): 0.82-0.90x ingests/s with 8 threads; this way the median was 0.99x (6 runs).
https://www.postgresql.org/docs/current/sql-notify.html
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

import psycopg
import psycopg.sql

log = logging.getLogger("wlmap.store")

NOTIFY: Final = "SELECT pg_notify(%s, '')"
WAIT: Final = 1.0  # seconds a thread waits for a notification (or a NOTIFY to send) before it looks at `stop`
MAX_BACKOFF: Final = 5.0  # seconds between connection attempts while the database cannot be reached


def _plain(exc: BaseException) -> str:
    lines = [part.strip() for part in str(exc).splitlines() if part.strip()]
    return lines[0] if lines else type(exc).__name__


def _close(conn: psycopg.Connection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()


class Sender:
    """NOTIFY from a thread of its own: one for every `send()` since the last one went out."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo, self._channel = conninfo, channel
        self._due = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self) -> None:
        """After a commit that stored jobs: NOTIFY soon (the caller does not wait)."""
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="wlmap-store-notify", daemon=True)
                self._thread.start()
        self._due.set()

    def close(self) -> None:
        with self._lock:
            self._closed, thread = True, self._thread
        self._due.set()
        if thread is not None:
            thread.join(WAIT * 2)

    def _loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        failures = 0
        while True:
            self._due.wait()
            if self._closed:
                break
            self._due.clear()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._conninfo, autocommit=True)
                conn.execute(NOTIFY, (self._channel,))
                failures = 0
            except psycopg.Error as exc:  # the workers' poll finds the jobs meanwhile
                failures += 1
                log.debug("store: NOTIFY not sent: %s", _plain(exc))
                _close(conn)
                conn = None
                self._due.set()  # try again after the back-off: these jobs are not announced yet
                threading.Event().wait(min(0.25 * 2 ** min(failures, 16), MAX_BACKOFF))
        _close(conn)


def listen(conninfo: str, channel: str, wake: Callable[[], None], where: str) -> Callable[[], None]:
    """Call `wake()` from a thread of its own on every notification on `channel`; returns the way to stop."""
    stop = threading.Event()
    thread = threading.Thread(target=_listen, args=(conninfo, channel, wake, where, stop), daemon=True)
    thread.name = "wlmap-store-listen"
    thread.start()

    def stopped() -> None:
        stop.set()
        thread.join(WAIT * 2)

    return stopped


def _listen(conninfo: str, channel: str, wake: Callable[[], None], where: str, stop: threading.Event) -> None:
    failures = 0
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
                if failures:
                    log.info("store: listening for new jobs on %s again", where)
                failures = 0
                wake()  # whatever was stored while nobody listened
                while not stop.is_set():
                    for _ in conn.notifies(timeout=WAIT):
                        wake()
        except psycopg.Error as exc:
            failures += 1
            if failures == 1 and not stop.is_set():
                log.warning("store: not listening for new jobs on %s (%s); polling meanwhile", where, _plain(exc))
            stop.wait(min(0.25 * 2 ** min(failures, 16), MAX_BACKOFF))
