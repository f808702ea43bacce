"""Wake-ups across processes: the listener tells each worker process "jobs were stored" without a store poll.

One Unix datagram socket pair per worker slot, made by the supervisor before it starts anything and kept open
by it: a restarted listener or worker inherits the same pair, so nobody has names or files to clean up. The
listener writes one byte to every slot (never blocking: a slot whose buffer is full is already awake); a
worker drains its end on the event loop and looks at the store. The poll (`--poll`) still finds anything a
lost byte would have announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_WAKE = b"!"
_DRAIN = 4096  # bytes read at most per look (one wake-up is one byte)


@dataclass(frozen=True)
class Slot:
    """One worker process's pair: the listener sends on `sender`, the worker receives on `receiver`."""

    sender: socket.socket = field(repr=False)
    receiver: socket.socket = field(repr=False)


def slots(count: int) -> tuple[Slot, ...]:
    made = []
    for _ in range(count):
        sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        receiver.setblocking(False)
        made.append(Slot(sender, receiver))
    return tuple(made)


def waker(senders: Sequence[socket.socket]) -> Callable[[], None]:
    """What the listener calls (on its event loop) after a webhook is stored: one byte to every worker process,
    once per turn of the loop however many webhooks that turn stored."""
    pending = False

    def send() -> None:
        nonlocal pending
        pending = False
        for sender in senders:
            with contextlib.suppress(OSError):  # full (the worker is awake anyway), or the pair is closed
                sender.send(_WAKE)

    def wake() -> None:
        nonlocal pending
        if not pending:
            pending = True
            asyncio.get_running_loop().call_soon(send)

    return wake


def listen(receiver: socket.socket, wake: Callable[[], None]) -> Callable[[], None]:
    """Call `wake()` on the running loop whenever a byte arrives on `receiver`; returns the way to stop."""
    loop = asyncio.get_running_loop()

    def readable() -> None:
        with contextlib.suppress(OSError):
            while receiver.recv(_DRAIN):
                pass
        wake()

    loop.add_reader(receiver.fileno(), readable)

    def stop() -> None:
        loop.remove_reader(receiver.fileno())

    return stop
