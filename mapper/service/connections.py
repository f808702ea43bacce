"""What uvicorn lacks against slow or idle clients: a deadline for each request head, a cap on open connections.

uvicorn (h11) closes a keep-alive connection that stays idle after a response (`timeout_keep_alive`), but
nothing else: a connection that never sends a byte, or sends its request line and headers a byte at a time, is
held for ever (issue 17 held 1,000 of them for 20 s). Its `limit_concurrency` answers 503 to *every* request
once the connections reach the limit, idle ones included, so a flood of idle connections would take /healthz and
signed webhooks down with it. So the service runs h11 through `guarded(...)`, which adds:

- a head deadline: a request's line and headers must be in within `header_timeout` seconds of the connection
  opening (or of the previous response). A client that sent part of a head gets `408` and the connection is
  closed; one that sent nothing is closed.
- a cap on open connections: past `max_connections`, the connection that has been idle longest (no request in
  progress) is closed to make room, else the oldest one still sending a request body, else the new one. A real
  client sends its request at once, so it is never the idle one that goes first.

The body has its own deadline in the listener (`ListenerOptions.body_timeout`, answered 408): it is the ASGI
app that waits for a body, and only it can still answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("wlmap.service")

_BODY = json.dumps({"error": "request head not received in time"}, separators=(",", ":")).encode()
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)


def guarded(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a head deadline and a cap on open connections (see the module docstring)."""

    class GuardedH11(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            self._partial = False  # bytes of a head arrived since the last request
            self._idle_since = self.loop.time()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()
            if len(self.connections) > max_connections:
                _make_room(self.connections, self)

        def data_received(self, data: bytes) -> None:
            self._partial = True
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is in: the body has the listener's deadline
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._partial = False
                self._idle_since = self.loop.time()
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        @property
        def idle(self) -> bool:
            """No request in progress: waiting for a head (or in keep-alive)."""
            return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

        @property
        def sending_body(self) -> bool:
            return self.conn.their_state is h11.SEND_BODY and self.cycle is not None and self.cycle.more_body

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or not self.idle:
                return
            if self._partial:  # part of a head: tell the client why (h11 cannot answer a request it has not got)
                self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()

    return GuardedH11


def _make_room(connections: set[Any], new: Any) -> None:
    """Close one connection so that at most the cap stay open: the longest idle, else the oldest slow body."""
    others = [
        connection for connection in connections if connection is not new and not connection.transport.is_closing()
    ]
    idle = [connection for connection in others if getattr(connection, "idle", False)]
    slow = [connection for connection in others if getattr(connection, "sending_body", False)]
    victim = min(idle or slow or [new], key=lambda connection: getattr(connection, "_idle_since", 0.0))
    log.debug(
        "too many open connections: closing one (%s)", "idle" if idle else "a slow body" if slow else "the new one"
    )
    victim.transport.close()
