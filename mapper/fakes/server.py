"""One fake system's HTTP server: the standard library's threading server on 127.0.0.1, a free port, a thread.

A fake is a function `Request -> Reply`; the server records every request it answered (`requests`) and turns
an exception in the fake into a 500 that names it, so a broken fake shows up as a failed run, not a hang.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded
    params: Mapping[str, str]  # the query's parameters, decoded (the last of a repeated one)
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # dict or list: JSON; bytes or str: as it is; None: no body
    headers: Mapping[str, str] = field(default_factory=dict)

    def content(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, dict | list):
            headers.setdefault("content-type", "application/json")
            return json.dumps(self.body).encode(), headers
        if self.body is None:
            return b"", headers
        return (self.body if isinstance(self.body, bytes) else str(self.body).encode()), headers


Fake = Callable[[Request], Reply]


class Samples:
    """The saved answers a fake gives: JSON files under a samples folder, named relative to it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def json(self, name: str) -> Any:
        return json.loads((self.folder / name).read_text(encoding="utf-8"))

    def files(self, pattern: str) -> list[Path]:
        return sorted(self.folder.glob(pattern))


class FakeServer:
    """`with FakeServer(fake) as server:` — `server.url` answers with `fake` until the block ends."""

    def __init__(self, fake: Fake, host: str = "127.0.0.1") -> None:
        self.fake = fake
        self.requests: list[Request] = []
        self._http = ThreadingHTTPServer((host, 0), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="wlmap-fake", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, request: Request) -> Reply:
        self.requests.append(request)
        try:
            return self.fake(request)
        except Exception as exc:  # a fake's own bug: answered, so the run that met it says so
            return Reply(500, {"error": f"the fake system failed: {type(exc).__name__}: {exc}"})


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            params = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = server.answer(Request(self.command, unquote(parts.path), params, headers, body))
            content, reply_headers = reply.content()
            self.send_response(reply.status)
            for name, value in reply_headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the demo shows what the listener recorded, not an access log

    return Handler
