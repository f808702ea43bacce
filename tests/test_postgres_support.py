"""Not tests: a TCP proxy to cut and restore the way to PostgreSQL, and the service on a PostgreSQL store.

with Proxy(host, port) as proxy:     # 127.0.0.1:proxy.port forwards to host:port
    proxy.stop()                     # every connection through it is cut, new ones are refused
    proxy.start()                    # the same port again
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from conftest import PostgresSchema, with_params
from test_service_support import Service, Target


class Proxy:
    """A plain TCP forwarder in threads; stop() closes the listening socket and every open connection."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> Proxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def url_via(database: PostgresSchema, host: str, port: int) -> str:
    """The schema's store URL, but connecting to host:port (a proxy) instead of the server."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(database.server)
    user = quote(str(params.get("user") or "postgres"), safe="")
    password = f":{quote(str(params['password']), safe='')}" if params.get("password") else ""
    server = f"postgresql://{user}{password}@{host}:{port}/{params.get('dbname') or ''}"
    return with_params(server, options=f"-csearch_path%3D{database.schema}", application_name=database.application_name)


def upstream(database: PostgresSchema) -> tuple[str, int]:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(database.server)
    return str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)


class PgService(Service):
    """The service subprocess on a PostgreSQL store; `query` reads the test's schema."""

    def __init__(
        self, tmp_path: Path, target: Target, database: PostgresSchema, *, url: str | None = None, **options: Any
    ) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp_path, target, **options)
        self.database = database
        self.store = url or database.url  # type: ignore[assignment]  # `--store` takes the URL

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.database.query(sql, params)
