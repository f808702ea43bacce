"""Test fakes: real HTTP servers on 127.0.0.1 (scripted, OAuth2, SAP, Scope AR), clock, sleep, plan builders.

    with FakeServer() as server:                      # uvicorn on 127.0.0.1, a free port, in a thread
        server.route("GET", "/things/*", Reply.json({"ok": True}), Reply(status=503))
        ... requests to server.url ...
        server.requests                               # every request: method, path, query, headers, body

    with serve(any_asgi_app) as base_url: ...         # the same for any ASGI app (a starlette app, say)

A route answers from a list of replies (one per request, the last one repeated) or a callable
`Recorded -> Reply` (sync or async). `Reply(delay=...)` answers slowly. FakeOAuth2, FakeSap and FakeScope
put realistic routes on a server and count what happened.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import inspect
import itertools
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import uvicorn

from mapper.errors import Location
from mapper.language import plan
from mapper.language.expressions import compile_template

ASGIApp = Callable[..., Awaitable[None]]


# ------------------------------------------------------------------------------------------ requests, replies


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent, without the query
    query: str  # raw query string, as sent
    headers: tuple[tuple[str, str], ...]  # lower-case names, in order, repeats kept
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name.lower()]
        return ", ".join(values) if values else None

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(self.text, keep_blank_values=True).items()}

    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        jar.load(self.header("cookie") or "")
        return {name: morsel.value for name, morsel in jar.items()}

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.header("authorization") or ""
        if not value.lower().startswith("basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0  # seconds to wait before answering

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None, delay: float = 0.0
    ) -> Reply:
        return cls(status, json.dumps(data), [("content-type", "application/json"), *(headers or [])], delay)

    @classmethod
    def text(cls, text: str, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Reply:
        return cls(status, text, [("content-type", "text/plain; charset=utf-8"), *(headers or [])])


Handler = Callable[[Recorded], Reply | Awaitable[Reply]]


class _Route:
    def __init__(self, method: str, pattern: str, replies: tuple[Reply | Handler, ...]) -> None:
        if not replies:
            raise ValueError("a route needs at least one reply or handler")
        self.method = method.upper()
        self.pattern = pattern
        self.replies = list(replies)
        self.lock = threading.Lock()

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and fnmatch.fnmatchcase(path, self.pattern)

    def next(self) -> Reply | Handler:
        with self.lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


# ------------------------------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_certificates(directory: Path) -> Certificates:
    """Create the files with the openssl command line (EC P-256 keys, valid for two days)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *key,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=wlmap test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    for name, extensions in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (directory / f"{name}.ext").write_text(extensions + "\n")
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=wlmap test {name}")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            str(len(name)),
            "-days",
            "2",
            "-out",
            f"{name}.pem",
            "-extfile",
            f"{name}.ext",
        )
    return Certificates(
        *(str(directory / name) for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key"))
    )


@contextmanager
def serve(app: ASGIApp, tls: Certificates | None = None, require_client_cert: bool = False) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL.

    With `tls`, serve HTTPS with its server certificate (and, if asked, require a client certificate).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="error",
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        interface="asgi3",
        log_config=None,
        timeout_graceful_shutdown=2,
        ssl_certfile=tls.server_cert if tls else None,
        ssl_keyfile=tls.server_key if tls else None,
        ssl_ca_certs=tls.ca if tls and require_client_cert else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if tls and require_client_cert else ssl.CERT_NONE,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"fake-server-{port}")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.01)
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class FakeServer:
    """A scripted HTTP server that records every request. `with FakeServer() as server:` starts it."""

    def __init__(self, tls: Certificates | None = None, require_client_cert: bool = False) -> None:
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.routes: list[_Route] = []
        self.requests: list[Recorded] = []
        self.url = ""
        self.closing = False
        self._serving: Any = None

    def route(self, method: str, pattern: str, *replies: Reply | Handler) -> None:
        """Answer `method` (or "*") requests whose path matches `pattern` (fnmatch: `/api/*`); newest wins."""
        self.routes.insert(0, _Route(method, pattern, replies))

    def requests_to(self, pattern: str, method: str = "*") -> list[Recorded]:
        return [
            request
            for request in list(self.requests)
            if method in ("*", request.method) and fnmatch.fnmatchcase(request.path, pattern)
        ]

    def __enter__(self) -> FakeServer:
        self._serving = serve(self.app, self.tls, self.require_client_cert)
        self.url = self._serving.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.closing = True
        self._serving.__exit__(*exc_info)

    async def app(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        recorded = Recorded(
            method=scope["method"],
            path=scope["path"],
            raw_path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1").partition("?")[0],
            query=scope["query_string"].decode("latin-1"),
            headers=tuple((key.decode("latin-1").lower(), value.decode("latin-1")) for key, value in scope["headers"]),
            body=body,
        )
        self.requests.append(recorded)
        reply = await self._answer(recorded)
        waited = 0.0
        while waited < reply.delay and not self.closing:
            await asyncio.sleep(0.02)
            waited += 0.02
        content = reply.body.encode() if isinstance(reply.body, str) else reply.body
        headers = [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in reply.headers]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, request: Recorded) -> Reply:
        for route in self.routes:
            if route.matches(request.method, request.path):
                reply = route.next()
                if isinstance(reply, Reply):
                    return reply
                result = reply(request)
                return await result if inspect.isawaitable(result) else result
        return Reply.text(f"no route for {request.method} {request.path}", status=404)


# ------------------------------------------------------------------------------------ realistic endpoints


class FakeOAuth2:
    """An OAuth2 client-credentials token endpoint (RFC 6749 §4.4): counts fetches, issues tok-1, tok-2..."""

    def __init__(
        self,
        server: FakeServer,
        *,
        path: str = "/oauth/token",
        client_id: str = "wlmap-client",
        client_secret: str = "oauth-secret-0042",
        expires_in: float | None = 3600,
        delay: float = 0.0,
    ) -> None:
        self.server = server
        self.path = path
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.delay = delay  # seconds each token takes: lets concurrent requests race for it
        self.fetches = 0
        self.forms: list[dict[str, str]] = []
        self.valid: set[str] = set()
        self._numbers = itertools.count(1)
        server.route("POST", path, self._token)

    @property
    def url(self) -> str:
        return self.server.url + self.path

    def _token(self, request: Recorded) -> Reply:
        self.fetches += 1
        form = request.form()
        self.forms.append(form)
        basic = request.basic_auth()
        if basic is not None:
            client = (unquote_plus(basic[0]), unquote_plus(basic[1]))
        else:
            client = (form.get("client_id", ""), form.get("client_secret", ""))
        if form.get("grant_type") != "client_credentials":
            return Reply.json({"error": "unsupported_grant_type"}, status=400)
        if client != (self.client_id, self.client_secret):
            return Reply.json({"error": "invalid_client", "error_description": "bad client credentials"}, 401)
        token = f"tok-{next(self._numbers)}"
        self.valid.add(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return Reply.json(answer, delay=self.delay)

    def revoke_all(self) -> None:
        """Every token issued so far stops working (as after a key rotation)."""
        self.valid.clear()

    def authorized(self, request: Recorded) -> bool:
        value = request.header("authorization") or ""
        return value.startswith("Bearer ") and value[7:] in self.valid

    def protect(self, method: str, pattern: str, reply: Reply) -> None:
        """A resource that answers `reply` to a valid bearer token and 401 otherwise."""

        def handle(request: Recorded) -> Reply:
            if not self.authorized(request):
                return Reply.json(
                    {"error": "invalid_token"}, 401, [("www-authenticate", 'Bearer error="invalid_token"')]
                )
            return reply

        self.server.route(method, pattern, handle)


class FakeSap:
    """An SAP OData V2 service that insists on the CSRF handshake.

    `GET <service>/` with `x-csrf-token: Fetch` hands out a token and `Set-Cookie: SAP_SESSIONID_ABC_100=...`;
    a write (POST/PUT/PATCH/MERGE/DELETE) needs both, or it answers 403 with `x-csrf-token: Required`.
    """

    WRITES = frozenset({"POST", "PUT", "PATCH", "MERGE", "DELETE"})
    COOKIE = "SAP_SESSIONID_ABC_100"

    def __init__(
        self,
        server: FakeServer,
        *,
        service: str = "/sap/opu/odata/sap/API_MAINTNOTIFICATION",
        user: str | None = None,
        password: str | None = None,
        reject_all: bool = False,
    ) -> None:
        self.server = server
        self.service = service
        self.user = user
        self.password = password
        self.reject_all = reject_all  # every write is refused (a token that never works)
        self.fetches = 0
        self.rejected = 0
        self.writes: list[Recorded] = []  # accepted writes
        self.token: str | None = None
        self.session: str | None = None
        self._numbers = itertools.count(1)
        self._expire_once = False
        server.route("*", service, self._handle)
        server.route("*", service + "/*", self._handle)

    def expire_token_once(self) -> None:
        """The next write finds its token expired (403 Required); a new fetch works again."""
        self._expire_once = True

    def _handle(self, request: Recorded) -> Reply:
        if self.user is not None and request.basic_auth() != (self.user, self.password):
            return Reply.text("Logon failed", status=401, headers=[("www-authenticate", 'Basic realm="SAP"')])
        if request.method in ("GET", "HEAD"):
            if (request.header("x-csrf-token") or "").lower() == "fetch":
                return self._fetch(request)
            return Reply.json({"d": {"results": []}})
        if request.method not in self.WRITES:
            return Reply.text("method not allowed", status=405)
        if self._expire_once:
            self._expire_once = False
            self.token = None
        valid = (
            self.token is not None
            and request.header("x-csrf-token") == self.token
            and request.cookies().get(self.COOKIE) == self.session
        )
        if self.reject_all or not valid:
            self.rejected += 1
            return Reply.text("CSRF token validation failed", status=403, headers=[("x-csrf-token", "Required")])
        self.writes.append(request)
        data = request.json() if request.body else {}
        return Reply.json({"d": data}, status=201 if request.method == "POST" else 200)

    def _fetch(self, request: Recorded) -> Reply:
        self.fetches += 1
        number = next(self._numbers)
        self.token = f"csrf-token-{number:04d}=="
        if request.cookies().get(self.COOKIE) != self.session or self.session is None:
            self.session = f"session-{number:04d}"
        return Reply.json(
            {"d": {"EntitySets": []}},
            headers=[
                ("x-csrf-token", self.token),
                ("set-cookie", f"{self.COOKIE}={self.session}; path=/; HttpOnly"),
                ("set-cookie", "sap-usercontext=sap-client=100; path=/"),
            ],
        )


class FakeScope:
    """The Scope AR GraphQL endpoint: checks `Authorization: Token token=...`, answers from a script.

    Build replies with the helpers: `data`, `errors` (HTTP 200, as Scope AR does), `status`, `slow`, `text`.
    """

    def __init__(self, server: FakeServer, *, path: str = "/api/v3/graphql", token: str = "scope-api-token") -> None:
        self.server = server
        self.path = path
        self.token = token
        self.payloads: list[dict[str, Any]] = []
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        server.route("POST", path, self._handle)

    @property
    def url(self) -> str:
        return self.server.url + self.path

    def answer(self, *replies: Reply) -> None:
        """Queue replies, one per request; the last one is repeated."""
        with self._lock:
            self._script.extend(replies)

    @staticmethod
    def data(data: Mapping[str, Any]) -> Reply:
        return Reply.json({"data": dict(data)})

    @staticmethod
    def errors(*messages: str, data: Any = None, status: int = 200) -> Reply:
        return Reply.json(
            {"data": data, "errors": [{"message": message, "path": ["node"]} for message in messages]}, status
        )

    @staticmethod
    def status(code: int, body: str = "") -> Reply:
        return Reply.text(body or f"HTTP {code}", status=code)

    @staticmethod
    def slow(delay: float, data: Mapping[str, Any] | None = None) -> Reply:
        return Reply.json({"data": dict(data or {})}, delay=delay)

    @staticmethod
    def text(text: str, status: int = 200) -> Reply:
        return Reply(status, text, [("content-type", "text/html")])

    def _handle(self, request: Recorded) -> Reply:
        if request.header("authorization") != f"Token token={self.token}":
            return Reply.json({"errors": [{"message": "Unauthorized"}]}, status=401)
        self.payloads.append(request.json())
        with self._lock:
            if not self._script:
                return Reply.json({"data": None, "errors": [{"message": "the fake has no answer scripted"}]})
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]


# ------------------------------------------------------------------------------------------ time, plans


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    """An `asyncio.sleep` replacement that records how long it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


HERE = Location("tests/fake-mapping.yaml", 1, 1)


def value(source: str, where: str = "test value") -> plan.Value:
    """A plan Value from template text, compiled the way the compiler does (`{{ env.X }}` reads env)."""
    template = compile_template(source)
    return plan.Value(HERE, where, template.render, (template,))


def auth(
    kind: str = "none",
    *,
    name: str | None = None,
    placement: str = "header",
    scopes: tuple[str, ...] = (),
    audience: str | None = None,
    client_auth: str = "basic",
    **values: str,
) -> plan.Auth:
    """`auth("basic", username="{{ env.USER }}", password="{{ env.PASSWORD }}")`: values are templates."""
    return plan.Auth(
        kind=kind,
        values={key: value(text, f"auth > {key}") for key, text in values.items()},  # type: ignore[arg-type]
        name=name,
        placement=placement,
        scopes=scopes,
        audience=audience,  # type: ignore[arg-type]
        client_auth=client_auth,
    )  # type: ignore[arg-type]


def connection(
    name: str = "target",
    *,
    base_url: str | None = None,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    **options: Any,
) -> plan.Connection:
    """A plan Connection: base_url, url, headers, params are template texts; options as in plan.Connection."""
    return plan.Connection(
        name=name,
        location=HERE,
        url=value(url, "url") if url is not None else None,
        base_url=value(base_url, "base_url") if base_url is not None else None,
        headers=tuple((key, value(text, f"headers > {key}")) for key, text in (headers or {}).items()),
        params=tuple((key, value(text, f"params > {key}")) for key, text in (params or {}).items()),
        **options,
    )
