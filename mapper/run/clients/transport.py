"""The wire under every client: httpx's API (requests, responses, MockTransport in tests) on aiohttp's pool.

Why not httpx's own transport: under load httpcore spends most of its time in bookkeeping, not on the wire.
Its pool re-examines every queued request and every connection on each change (encode/httpx#3215,
encode/httpcore#1035), asking each connection's socket whether it is readable through anyio's typed
attributes. Measured with bench/service_load.py (same run, same 2,000 webhooks): the service's end-to-end rate
went from ~190 to ~500 events/s with this transport.
Why not httpx-aiohttp's AiohttpTransport, which does the same: it maps aiohttp's ServerDisconnectedError and
ClientOSError (the connection broke after the request went out) to httpx.ConnectTimeout, i.e. "not sent",
which would let a non-idempotent request be repeated; it lets yarl re-quote the URL we encoded on purpose; and
aiohttp's own cookie jar would keep session cookies that wlmap drops on purpose (see `exchange.Wire`).

Errors map to httpx's classes by what they tell about the request: refused or unreachable before anything
was sent → ConnectError / ConnectTimeout; anything once connected → ReadTimeout / ReadError /
RemoteProtocolError ("sent; the outcome is unknown"). The aiohttp exception stays the `__cause__`, so a TLS
certificate problem is still found in the chain.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Final, Literal

import aiohttp
import httpx
from yarl import URL

MAX_CONNECTIONS: Final = 100  # per connection of a mapping, as httpx's default pool
KEEPALIVE_SECONDS: Final = 5.0  # an idle connection is closed after this, as httpx's default
CHUNK: Final = 64 * 1024
# Only what httpx put on the request goes out: aiohttp adds none of its own defaults.
_SKIP_AUTO_HEADERS: Final = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

Stack = Literal["aiohttp", "httpcore"]  # "httpcore": httpx's own transport (kept to compare, and as a fallback)


def for_stack(stack: Stack, verify: ssl.SSLContext | bool) -> httpx.AsyncBaseTransport:
    """The transport a client uses on `stack`."""
    if stack == "aiohttp":
        return AiohttpTransport(verify)
    return httpx.AsyncHTTPTransport(verify=verify, trust_env=False)


def _mapped(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx error that says the same about the request (see the module docstring)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable, DNS, TLS handshake
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):  # an answer that is not HTTP
        return httpx.RemoteProtocolError(message, request=request)
    # Disconnected, reset, a broken payload: the request may have been applied.
    return httpx.ReadError(message, request=request)


class _Body(httpx.AsyncByteStream):
    """The answer's body as it arrives; closing it before the end closes the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response, self._request = response, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK):
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _mapped(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp connector (pool) per transport; `verify` as httpx takes it (bool or an SSLContext)."""

    def __init__(
        self,
        verify: ssl.SSLContext | bool = True,
        *,
        max_connections: int = MAX_CONNECTIONS,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        # httpx's own context for True (certifi's CAs), so trust is the same whichever transport sends.
        self._ssl: ssl.SSLContext | bool = False if verify is False else httpx.create_ssl_context(verify=verify)
        self._limit, self._keepalive = max_connections, keepalive
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:  # in the running loop, at the first request
        connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=self._keepalive, ssl=self._ssl)
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        timeouts = request.extensions.get("timeout", {})
        content = await request.aread()
        try:
            answer = await self._session.request(
                request.method,
                URL(str(request.url), encoded=True),  # the bytes we encoded, not re-quoted
                headers=list(request.headers.multi_items()),
                data=content or None,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _mapped(exc, request) from exc
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            stream=_Body(answer, request),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (answer.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
