"""The wire under every client: a request built once (`Outgoing`) and sent by aiohttp, or by an httpx transport.

What each library does for us:
- aiohttp (`AiohttpSender`, the default): the connection pool, HTTP/1.1 on the wire, TLS. The request goes to
  `ClientSession.request` as we built it (a yarl URL taken as encoded, our headers, our bytes) and the answer
  comes back as status, raw headers and bytes: nothing is translated into another library's objects.
- httpx (`HttpxSender`): the transport interface that tests and rehearsals plug in (`httpx.MockTransport`,
  `rehearse.stubs.StubTransport`), and httpx's own pool (`stack="httpcore"`, kept to compare in bench/). Only
  there is an httpx.Request built, carrying who sends it as extensions (see `exchange.STEP_EXTENSION`).

Why aiohttp and not httpx's own transport: under load httpcore spends most of its time in bookkeeping, not on
the wire. Its pool re-examines every queued request and every connection on each change (encode/httpx#3215,
encode/httpcore#1035). Measured with bench/service_load.py (same run, same 2,000 webhooks): the service's
end-to-end rate went from ~190 to ~500 events/s on aiohttp. Why not httpx-aiohttp's AiohttpTransport: it maps
aiohttp's ServerDisconnectedError and ClientOSError (the connection broke after the request went out) to
httpx.ConnectTimeout, i.e. "not sent", which would let a non-idempotent request be repeated; it lets yarl
re-quote the URL we encoded on purpose; and aiohttp's cookie jar would keep session cookies that wlmap drops on
purpose (see `wire.Wire`). Why no httpx.Request on the aiohttp path: building it, then translating it, then the
answer back into an httpx.Response cost as much CPU as aiohttp itself (bench/client_stack.py: 290 µs per
request vs 95 µs for aiohttp alone before; see the commit that removed it for the figure after).

Failures are told in httpx's exception classes whichever library sent, by what they say about the request:
refused or unreachable before anything was sent → ConnectError / ConnectTimeout; anything once connected →
ReadTimeout / ReadError / RemoteProtocolError ("sent; the outcome is unknown"). The aiohttp exception stays
the `__cause__`, so a TLS certificate problem is still found in the chain.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, NamedTuple, Protocol

import aiohttp
import httpx
from yarl import URL

from mapper.run.clients.exchange import KIND_EXTENSION, STEP_EXTENSION, ExchangeKind

MAX_CONNECTIONS: Final = 100  # per connection of a mapping, as httpx's default pool
KEEPALIVE_SECONDS: Final = 5.0  # an idle connection is closed after this, as httpx's default
CHUNK: Final = 64 * 1024
# Only the headers we put on the request go out: aiohttp adds none of its own defaults.
_SKIP_AUTO_HEADERS: Final = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

Stack = Literal["aiohttp", "httpcore"]  # "httpcore": httpx's own transport (kept to compare, and as a fallback)
RawHeaders = Sequence[tuple[bytes, bytes]]


@dataclass(slots=True)
class Outgoing:
    """One request as it goes out: built once by the wire, sent as it is, recorded from the same values."""

    method: str
    url: URL  # encoded as it goes on the wire (`target.wire_url`)
    headers: dict[str, str]  # lower-case names
    content: bytes
    timeout: float  # seconds, for connecting, for a free connection, and between bytes of the answer
    kind: ExchangeKind
    step: str | None


class Received(NamedTuple):
    """What came back: the status, the headers as sent (bytes), the whole body."""

    status: int
    headers: RawHeaders
    content: bytes


class TooLarge(Exception):
    """The answer is larger than the client accepts (answers are untrusted)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


class Sender(Protocol):
    async def send(self, request: Outgoing, limit: int) -> Received: ...

    async def aclose(self) -> None: ...


def sender_for(
    transport: httpx.AsyncBaseTransport | None, stack: Stack, verify: ssl.SSLContext | bool
) -> AiohttpSender | HttpxSender:
    """What sends a client's requests: the transport given (tests, rehearsals), else the stack's own."""
    if transport is not None:
        return HttpxSender(transport)
    if stack == "aiohttp":
        return AiohttpSender(verify)
    return HttpxSender(httpx.AsyncHTTPTransport(verify=verify, trust_env=False))


def _mapped(exc: BaseException) -> httpx.TransportError:
    """The httpx error that says the same about the request (see the module docstring)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable, DNS, TLS handshake
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientResponseError):  # an answer that is not HTTP
        return httpx.RemoteProtocolError(message)
    # Disconnected, reset, a broken payload: the request may have been applied.
    return httpx.ReadError(message)


@lru_cache(maxsize=32)
def _timeouts(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


class AiohttpSender:
    """One aiohttp connector (pool) per client; `verify` as httpx takes it (bool or an SSLContext)."""

    def __init__(
        self,
        verify: ssl.SSLContext | bool = True,
        *,
        max_connections: int = MAX_CONNECTIONS,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        # httpx's own context for True (certifi's CAs), so trust is the same whichever library sends.
        self._ssl: ssl.SSLContext | bool = False if verify is False else httpx.create_ssl_context(verify=verify)
        self._limit, self._keepalive = max_connections, keepalive
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:  # in the running loop, at the first request
        connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=self._keepalive, ssl=self._ssl)
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,  # gzip and deflate, as httpx decodes them (we ask for no other)
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
        )

    async def send(self, request: Outgoing, limit: int) -> Received:
        if self._session is None:
            self._session = self._open()
        try:
            async with self._session.request(
                request.method,
                request.url,  # encoded=True: the bytes we encoded, not re-quoted
                headers=request.headers,
                data=request.content or None,
                allow_redirects=False,
                compress=None,
                timeout=_timeouts(request.timeout),
            ) as answer:
                return Received(answer.status, answer.raw_headers, await _read(answer, limit))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _mapped(exc) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read(answer: aiohttp.ClientResponse, limit: int) -> bytes:
    length = answer.content_length
    if length is not None and length > limit and "content-encoding" not in answer.headers:
        answer.close()  # the rest is never read: the connection is not reused
        raise TooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            answer.close()
            raise TooLarge(limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class HttpxSender:
    """Sends through an httpx transport: the request built as an httpx.Request only here."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def send(self, request: Outgoing, limit: int) -> Received:
        seconds = request.timeout
        built = httpx.Request(
            request.method,
            str(request.url),
            headers=list(request.headers.items()),
            content=request.content or None,
            extensions={
                "timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds},
                STEP_EXTENSION: request.step,
                KIND_EXTENSION: request.kind,
            },
        )
        answer = await self.transport.handle_async_request(built)
        answer.request = built
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in answer.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(limit)
                chunks.append(chunk)
        finally:
            await answer.aclose()
        return Received(answer.status_code, answer.headers.raw, b"".join(chunks))

    async def aclose(self) -> None:
        await self.transport.aclose()
