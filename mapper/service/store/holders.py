"""Who holds a lease: this process, named so that another process on the same machine can tell it is gone.

A claimed job records its holder. After kill -9 the job stays `running` until its lease runs out (60 s by
default); a process that can PROVE the holder is dead takes the job back at once instead. Proof needs the
same machine and process namespace (host name, kernel boot id, PID namespace) and then either no process with
that pid, or one that started at another time (the pid was reused, e.g. pid 1 of a restarted container in the
same namespace). Anything else, including every system without Linux's /proc, proves nothing: the lease
decides, as before. https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html (field 22, starttime)
"""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path
from typing import Final

_SEPARATOR: Final = "|"  # not in a host name, a boot id, a namespace link or a number
_UNKNOWN: Final = "-"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return _UNKNOWN


def _namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return _UNKNOWN


def started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None when it is not running (none, or a zombie)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat == _UNKNOWN:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count fields after the last ")".
    fields = stat.rpartition(")")[2].split()
    if fields and fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent: it runs nothing any more
        return None
    return fields[19] if len(fields) > 19 else _UNKNOWN


@cache
def _machine() -> tuple[str, str, str]:
    return socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), _namespace()


def current() -> str:
    """This process as a lease holder: `host|boot id|pid namespace|pid|start time`."""
    return _holder(os.getpid())  # by pid: a forked child is a holder of its own


@cache
def _holder(pid: int) -> str:
    return _SEPARATOR.join((*_machine(), str(pid), started(pid) or _UNKNOWN))


def gone(holder: str) -> bool:
    """True only when `holder` is provably not running any more (see the module docstring)."""
    parts = holder.split(_SEPARATOR)
    if len(parts) != 5 or _UNKNOWN in parts:
        return False
    host, boot, namespace, pid, start = parts
    if (host, boot, namespace) != _machine() or not pid.isdigit():
        return False  # another machine, another boot or another container: nothing can be known from here
    now = started(int(pid))
    return now is None or (now != _UNKNOWN and now != start)
