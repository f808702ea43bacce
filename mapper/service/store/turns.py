"""Whose turn it is to write the SQLite file: the threads of this process, and the other processes on it.

SQLite lets one connection write at a time. A connection that finds the file locked waits in SQLite's busy
handler, which sleeps 1, 2, 5, 10, 15, 20, 25… ms between tries (https://www.sqlite.org/c3ref/busy_timeout.html):
when the listener and the workers are processes of their own, an acknowledgement that meets a worker's commit
would wait for the next try, not for the commit. So writers take turns first through this lock: a thread lock
for this process, and an exclusive `flock` on a file beside the store (`<store>-turn`) for the others, which
the kernel also frees when a process dies. A waiter looks again every `STEP` seconds, so it starts at most that
long after the commit before it ended. SQLite's own lock stays in force underneath.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from typing import Final

STEP: Final = 0.0003  # seconds between looks at a turn another process holds


class Turn:
    """`acquire(blocking=False)` or `acquire(timeout=...)`, then `release()`: like threading.Lock, across processes."""

    def __init__(self, store_path: str) -> None:
        self._thread = threading.Lock()
        self._fd: int | None = None
        if store_path == ":memory:" or store_path.startswith("file:"):
            return
        with contextlib.suppress(OSError):  # no file (a read-only folder): SQLite's busy handler decides alone
            self._fd = os.open(store_path + "-turn", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        deadline = time.monotonic() + timeout if timeout >= 0 else None
        if not (self._thread.acquire(timeout=timeout) if blocking else self._thread.acquire(blocking=False)):
            return False
        if self._fd is None:
            return True
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError:
                return True  # the file cannot be locked: SQLite's busy handler decides
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                self._thread.release()
                return False
            time.sleep(STEP)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()

    def locked(self) -> bool:
        """Held by a thread of this process."""
        return self._thread.locked()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
