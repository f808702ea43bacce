"""The HTTP server around the listener's app: uvicorn's settings, our signal handling, the listening socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
import threading
from collections.abc import Generator
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from mapper.service.connections import guarded
from mapper.service.options import ServiceError, ServiceOptions

log = logging.getLogger("wlmap.service")


def config(app: Starlette, options: ServiceOptions) -> uvicorn.Config:
    """uvicorn's settings: h11 with a head deadline and a connection cap (see `connections`), keep-alive."""
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        http=guarded(options.header_timeout, _connection_cap(options.max_connections)),
        timeout_keep_alive=options.keep_alive,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(options.grace)),
    )


def _connection_cap(wanted: int) -> int:
    """The connection cap, with the open-files limit raised to fit it where the hard limit allows (as Go
    programs do at start); without room, a lower cap than a refused accept() for every newcomer."""
    spare = 256  # the store, the mappings, outgoing connections to targets, the log
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed = wanted + spare
        if soft != resource.RLIM_INFINITY and soft < needed:
            raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    except (OSError, ValueError):
        return wanted
    if soft != resource.RLIM_INFINITY and soft < wanted + spare:
        cap = max(1, soft - spare)
        log.warning("the open-files limit (%d) allows %d connections, not %d (--max-connections)", soft, cap, wanted)
        return cap
    return wanted


class Quiet(uvicorn.Server):
    """A second server (the console's) that leaves the signals to the main one, which stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Server:
    """uvicorn's server, with our SIGTERM/SIGINT handling: stop gracefully and report which signal."""

    def __init__(self, config: uvicorn.Config) -> None:
        outer = self

        class Serving(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                # uvicorn re-raises the signal after shutdown, which would kill us before we clean up.
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                handled = (signal.SIGINT, signal.SIGTERM)
                originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
                try:
                    yield
                finally:
                    for sig, handler in originals.items():
                        signal.signal(sig, handler)

            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                outer.signal = sig
                super().handle_exit(sig, frame)

        self.signal: int | None = None
        self.server = Serving(config)

    def stop(self) -> None:
        self.server.should_exit = True

    async def serve(self, sock: socket.socket) -> None:
        await self.server.serve(sockets=[sock])


class Signals:
    """SIGTERM and SIGINT for a process that serves no HTTP (a worker process): `wait()` returns the signal."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._got = asyncio.Event()

    def stop(self) -> None:
        self._got.set()

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on, sig)
        try:
            await self._got.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on(self, sig: int) -> None:
        self.signal = sig
        self._got.set()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # create_server leaves the socket's proto 0, and asyncio sets TCP_NODELAY only on sockets whose proto is
    # IPPROTO_TCP (base_events._set_nodelay): without this, Nagle holds every answer's body until the client's
    # delayed ACK, ~40 ms per webhook on a keep-alive connection. Accepted connections inherit the option.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
