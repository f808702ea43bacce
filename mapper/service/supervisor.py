"""The main process of a service on the embedded store: start the listener and the worker processes, restart
one that dies, stop them all in order.

Why processes: one Python process uses one core, and a run (templates, JSON, HTTP) and an acknowledgement then
take turns on one event loop. On SQLite the store already works across processes (WAL, a write lock taken with
BEGIN IMMEDIATE, leases whose holder is a process: store.holders), so the listener and each worker get their own.

- The children are forked once everything that can be refused was checked here (mappings, secret, store, port):
  a user's mistake still ends the command with exit code 1 before anything runs.
- The listening socket is opened here and inherited: while a crashed listener is restarted, connections wait in
  the socket's backlog instead of being refused.
- A child that dies is logged and started again, after a pause that doubles (up to `MAX_BACKOFF`) while it keeps
  dying young. One that ends at once with code 1 (a problem the user can fix, which it has logged) stops the
  service with code 1 instead: starting it again would not help.
- SIGTERM (or Ctrl-C) stops the listener first (it stops accepting and answers what it has), then the workers
  (they finish or hand back their jobs within --grace), then this process; exit code 0 (130 after Ctrl-C).
- Killed itself (even with -9), it takes the children with it: each asks the kernel for a signal when its parent
  dies (prctl PR_SET_PDEATHSIG, Linux). A worker gets SIGTERM and finishes or hands back its jobs as on SIGTERM;
  the listener gets SIGKILL, which frees the port at once for the next start (what it acknowledged is already
  durable; a webhook it had not answered is sent again by Scope).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from mapper.service import wakeups
from mapper.service.metrics import process_ended

log = logging.getLogger("wlmap.service")

FIRST_BACKOFF: Final = 0.1  # seconds before a dead child is started again
MAX_BACKOFF: Final = 5.0
SETTLED: Final = 10.0  # seconds a child must live for the pause to start again from FIRST_BACKOFF
STOP_SLACK: Final = 10.0  # seconds beyond --grace a child gets to stop before it is killed
_SIGNALS: Final = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h
_GAVE_UP: Final = -1  # `_watch`: a child cannot run (exit code 1 at start)


def available() -> bool:
    """Whether this system can run the service in supervised processes (fork and sigtimedwait: Linux)."""
    return hasattr(os, "fork") and hasattr(signal, "sigtimedwait")


@dataclass(frozen=True)
class Part:
    """What one child is: the listener (it gets the socket and every wake-up sender) or worker number `index`."""

    role: str  # "listener" or "worker"
    index: int
    shared: Path  # the folder where the processes count their metrics together
    sock: socket.socket | None = field(default=None, repr=False)
    senders: tuple[socket.socket, ...] = field(default=(), repr=False)
    receiver: socket.socket | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.role if self.role == "listener" else f"worker {self.index}"


@dataclass
class _Child:
    part: Part
    pid: int = 0
    started: float = 0.0
    backoff: float = FIRST_BACKOFF
    due: float | None = None  # when to start it again (it is not running)


class Supervisor:
    """Runs `run(part)` in one forked child per part until `serve` is told to stop."""

    def __init__(
        self, sock: socket.socket, processes: int, grace: float, shared: Path, run: Callable[[Part], int]
    ) -> None:
        self.sock, self.grace, self.shared, self.run = sock, grace, shared, run
        self.slots = wakeups.slots(processes)
        senders = tuple(slot.sender for slot in self.slots)
        self.listener = _Child(Part("listener", 0, shared, sock=sock, senders=senders))
        self.workers = [_Child(Part("worker", i, shared, receiver=slot.receiver)) for i, slot in enumerate(self.slots)]

    def serve(self) -> int:
        """Until SIGTERM or SIGINT: start the children, restart those that die; then stop them; the exit code."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # taken with sigtimedwait: no handler races
        try:
            for child in (self.listener, *self.workers):
                self._start(child)
            stop = self._watch()
            self._stop()
            if stop == _GAVE_UP:
                return 1
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            for slot in self.slots:
                slot.sender.close()
                slot.receiver.close()
        return 130 if stop == signal.SIGINT else 0

    def _children(self) -> list[_Child]:
        return [self.listener, *self.workers]

    def _watch(self) -> int:
        while True:
            due = [child.due for child in self._children() if child.due is not None]
            wait = max(0.0, min(due) - time.monotonic()) if due else 1.0
            got = signal.sigtimedwait(_SIGNALS, wait)
            if got is not None and got.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("stopping: the listener first, then the workers")
                return got.si_signo
            if self._reap(restart=True):
                return _GAVE_UP
            now = time.monotonic()
            for child in self._children():
                if child.due is not None and child.due <= now:
                    self._start(child)

    def _reap(self, restart: bool) -> bool:
        """Collect the children that ended and plan their restarts; True when one cannot run at all."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return False
            process_ended(pid, self.shared)
            child = next((c for c in self._children() if c.pid == pid), None)
            if child is None:
                continue
            child.pid = 0
            if not restart:
                continue
            lived = time.monotonic() - child.started
            if lived < SETTLED and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1:
                log.error("the %s process cannot run (see above): stopping", child.part.name)
                return True
            child.backoff = FIRST_BACKOFF if lived >= SETTLED else child.backoff
            child.due = time.monotonic() + child.backoff
            log.error(
                "the %s process (pid %d) %s after %.1f s; starting it again in %.1f s",
                child.part.name,
                pid,
                _ended(status),
                lived,
                child.backoff,
            )
            child.backoff = min(child.backoff * 2, MAX_BACKOFF)

    def _start(self, child: _Child) -> None:
        child.due = None
        child.started = time.monotonic()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 3
            try:
                _become_child(parent, signal.SIGKILL if child.part.role == "listener" else signal.SIGTERM)
                if child.part.role != "listener":
                    self.sock.close()  # only the listener (and this process, for its restarts) holds the port
                code = self.run(child.part)
            except BaseException:
                log.exception("the %s process failed", child.part.name)
            finally:
                logging.shutdown()
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        child.pid = pid
        log.info("started the %s process (pid %d)", child.part.name, pid)

    def _stop(self) -> None:
        self._reap(restart=False)
        self._terminate([self.listener])
        self.sock.close()  # nobody answers on the port any more: refuse rather than queue
        log.info("the listener process stopped; stopping the worker processes")
        self._terminate(self.workers)
        log.info("the worker processes stopped")

    def _terminate(self, children: list[_Child]) -> None:
        running = [child for child in children if child.pid]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + STOP_SLACK
        while any(child.pid for child in running):
            left = deadline - time.monotonic()
            if left <= 0:
                for child in running:
                    if child.pid:
                        log.error("the %s process did not stop in time: killed", child.part.name)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(child.pid, signal.SIGKILL)
                left = STOP_SLACK
                deadline = time.monotonic() + left
            signal.sigtimedwait((signal.SIGCHLD,), min(left, 0.5))
            self._reap(restart=False)


def _become_child(parent: int, orphaned: int) -> None:
    """In a new child: the signals as a lone process has them, and `orphaned` when the parent dies."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    os.setpgid(0, 0)  # Ctrl-C reaches the parent alone, which stops the children in order
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, orphaned, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl: nobody would send the signal
        os._exit(0)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
