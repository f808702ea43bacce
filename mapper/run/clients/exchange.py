"""One HTTP exchange, sent and recorded masked: the Exchange record, the Response, and the Wire making both.

Logging: httpx logs every request's full URL (query string included) at INFO on the "httpx" logger
(https://www.python-httpx.org/logging/), which would put API keys sent as query parameters into logs.
`quiet_library_logs()` raises that logger (and httpcore's) to WARNING unless someone chose a level; our own
logger ("mapper.run.clients") only ever logs masked URLs, and only at DEBUG.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cached_property, lru_cache
from typing import Any, Literal

import httpx

from mapper.run.masking import Masker

ExchangeKind = Literal["request", "oauth2-token", "csrf-fetch", "graphql"]

EXCERPT_LIMIT = 4096  # characters of each body kept in an Exchange
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # an answer larger than this is refused: answers are untrusted

# What httpx.AsyncClient sends by default (gzip and deflate are always decoded; no br/zstd decoder is assumed).
DEFAULT_HEADERS = {"accept": "*/*", "accept-encoding": "gzip, deflate", "connection": "keep-alive"}

Reveals = Callable[["Response"], Iterable[str | None]]

# Who sends a request travels with it, as httpx request extensions that transports may read and the wire
# ignores: the step's name ("query" for the mapping's GraphQL query; a CSRF fetch or an OAuth2 token request
# carries the step it was made for) and the kind of exchange. A stub transport answers per step from them.
STEP_EXTENSION = "wlmap_step"
KIND_EXTENSION = "wlmap_kind"

log = logging.getLogger("mapper.run.clients")


def quiet_library_logs() -> None:
    """Keep httpx/httpcore from logging full URLs at INFO, unless their level was set on purpose."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


@dataclass(frozen=True)
class Exchange:
    """One request and its answer (or the error instead of one), as it may be shown: already masked."""

    kind: ExchangeKind
    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: str  # excerpt, at most EXCERPT_LIMIT characters
    status: int | None
    response_headers: Mapping[str, str]
    response_body: str  # excerpt, at most EXCERPT_LIMIT characters
    duration_ms: float
    error: str | None
    attempt: int
    request_bytes: int = 0  # the whole body's size, when the excerpt above is cut (trace.cap reads it)
    response_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        shown = {
            "kind": self.kind,
            "method": self.method,
            "url": self.url,
            "request_headers": self.request_headers,
            "request_body": self.request_body,
            "status": self.status,
            "response_headers": self.response_headers,
            "response_body": self.response_body,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "attempt": self.attempt,
        }
        if self.request_bytes:
            shown["request_body_bytes"] = self.request_bytes
        if self.response_bytes:
            shown["response_body_bytes"] = self.response_bytes
        return shown


@dataclass(frozen=True)
class Response:
    """What the server answered. `url` is masked; `headers` have lower-case names (repeats joined by ", ")."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    elapsed_ms: float
    url: str
    attempts: int = 1  # how many times the request was sent in this call (quick retries)
    notes: tuple[str, ...] = ()  # what the client did on the way, in words ("fetched a new CSRF token ...")
    masker: Masker = field(default_factory=Masker, repr=False, compare=False)

    @cached_property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers.get("content-type", "")), errors="replace")

    @cached_property
    def _parsed(self) -> tuple[bool, Any]:
        if not self.content.strip():
            return False, None
        try:
            return True, json.loads(self.text)
        except (ValueError, RecursionError):
            return False, None

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON (never raises)."""
        return self._parsed[1]

    @property
    def is_json(self) -> bool:
        return self._parsed[0]

    def excerpt(self, limit: int = 300) -> str:
        """The start of the body, masked, for messages."""
        return self.masker.excerpt(self.text.strip(), limit)

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


def _excerpt(mask: Masker, text: str, size: int) -> str:
    """The body masked; past EXCERPT_LIMIT characters, its start and how many bytes more there were."""
    if len(text) <= EXCERPT_LIMIT:
        return mask.text(text)
    more = max(0, size - len(text[:EXCERPT_LIMIT].encode()))
    return f"{mask.excerpt(text, EXCERPT_LIMIT)} {more} bytes more"


class Unanswered(Exception):
    """Internal signal: no answer. `sent`: the request may have reached the server; `auth`: while getting
    credentials (then the request itself was not sent)."""

    def __init__(self, reason: str, *, sent: bool, retryable: bool, auth: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.retryable = retryable
        self.auth = auth


class Wire:
    """Sends requests straight to one transport, records each exchange masked, never follows redirects.

    httpx.AsyncClient's per-request machinery (auth flows, redirect handling, a cookie jar run through
    urllib for every answer) does nothing wlmap wants: redirects are never followed, credentials are ours, and
    cookies are kept only for SAP's CSRF session. So requests are built here and handed to the transport.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        masker: Masker,
        *,
        keep_cookies: bool,
        user_agent: str,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.transport = transport
        self.masker = masker
        self.keep_cookies = keep_cookies
        self.cookies = httpx.Cookies()  # filled only when keep_cookies
        self.max_answer_bytes = max_answer_bytes
        self._defaults = {**DEFAULT_HEADERS, "user-agent": user_agent}

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        headers: Mapping[str, str],
        timeout: float | httpx.Timeout,
        kind: ExchangeKind,
        step: str | None,
        content: bytes | None = None,
    ) -> httpx.Request:
        """A request with the default headers under `headers` (lower-case names), and the session cookies;
        `step` and `kind` say who sends it (see STEP_EXTENSION)."""
        merged = self._defaults.copy()
        merged.update(headers)
        if not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout)
        extensions = {"timeout": timeout.as_dict(), STEP_EXTENSION: step, KIND_EXTENSION: kind}
        request = httpx.Request(method, url, headers=merged, content=content, extensions=extensions)
        if self.keep_cookies and self.cookies:
            self.cookies.set_cookie_header(request)
        return request

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def exchange(
        self,
        request: httpx.Request,
        *,
        exchanges: list[Exchange],
        attempt: int,
        reveals: Reveals | None = None,
    ) -> Response:
        """Send and record; `reveals` names secrets in the answer (a new token) to keep out of the record."""
        kind: ExchangeKind = request.extensions[KIND_EXTENSION]
        self.masker.learn_sent(_named(request.headers.raw, self.masker.sensitive_headers))  # a target may echo it
        started = time.perf_counter()
        try:
            answer = await self.transport.handle_async_request(request)
            answer.request = request
            try:
                content = await self._read(answer)
            finally:
                await answer.aclose()
        except (httpx.HTTPError, _TooLarge) as exc:
            failure = self._unanswered(request, exc)
            exchanges.append(self._record(kind, request, attempt, started, error=failure.reason))
            log.debug("%s %s: %s", request.method, self.masker.url(str(request.url)), failure.reason)
            raise failure from None
        if self.keep_cookies:
            self.cookies.extract_cookies(answer)
        headers = _header_dict(answer.headers.raw)
        self.masker.learn_received(_named(answer.headers.raw, _HANDED_OUT))  # session cookies and CSRF tokens
        shown_url = self.masker.url(str(request.url))
        response = Response(answer.status_code, headers, content, _ms(started), shown_url, masker=self.masker)
        for secret in reveals(response) if reveals else ():
            if secret:
                self.masker.remember(secret)
                shown_url = self.masker.url(str(request.url))
        exchanges.append(self._record(kind, request, attempt, started, response=response, url=shown_url))
        log.debug("%s %s → %d in %.0f ms", request.method, response.url, response.status, response.elapsed_ms)
        return response

    async def _read(self, answer: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.aiter_bytes():
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise _TooLarge(self.max_answer_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    def _record(
        self,
        kind: ExchangeKind,
        request: httpx.Request,
        attempt: int,
        started: float,
        *,
        response: Response | None = None,
        error: str | None = None,
        url: str | None = None,
    ) -> Exchange:
        mask = self.masker
        body = request.content.decode(_charset(request.headers.get("content-type", "")), errors="replace")
        answer = response.text if response else ""
        return Exchange(
            kind=kind,
            method=request.method,
            url=url if url is not None else mask.url(str(request.url)),
            request_headers=mask.headers(_decoded(request.headers.raw)),
            request_body=_excerpt(mask, body, len(request.content)),
            status=response.status if response else None,
            response_headers=mask.headers(response.headers) if response else {},
            response_body=_excerpt(mask, answer, len(response.content)) if response else "",
            duration_ms=_ms(started),
            error=error,
            attempt=attempt,
            request_bytes=len(request.content) if len(body) > EXCERPT_LIMIT else 0,
            response_bytes=len(response.content) if response and len(answer) > EXCERPT_LIMIT else 0,
        )

    def _unanswered(self, request: httpx.Request, exc: Exception) -> Unanswered:
        origin = self.masker.url(f"{request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}")
        timeouts = request.extensions.get("timeout", {})
        detail = self.masker.text(str(exc).strip())

        def seconds(name: str) -> str:
            value = timeouts.get(name)
            return f" within {value:g} s" if isinstance(value, int | float) else ""

        if isinstance(exc, _TooLarge):
            return Unanswered(
                f"{origin} answered with more than {exc.limit} bytes; the answer was refused",
                sent=True,
                retryable=False,
            )
        if isinstance(exc, httpx.ConnectTimeout):
            return Unanswered(f"could not connect to {origin}{seconds('connect')}", sent=False, retryable=True)
        if isinstance(exc, httpx.PoolTimeout):
            return Unanswered(f"no free connection to {origin}{seconds('pool')}", sent=False, retryable=True)
        if isinstance(exc, httpx.ConnectError):
            if _certificate_problem(exc):
                return Unanswered(
                    f"the TLS certificate of {origin} was not accepted: {detail}", sent=False, retryable=False
                )
            return Unanswered(
                f"could not connect to {origin}" + (f" ({detail})" if detail else ""), sent=False, retryable=True
            )
        if isinstance(exc, httpx.WriteTimeout):
            return Unanswered(f"could not send the request to {origin}{seconds('write')}", sent=True, retryable=True)
        if isinstance(exc, httpx.ReadTimeout):
            return Unanswered(f"{origin} did not answer{seconds('read')}", sent=True, retryable=True)
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            return Unanswered(
                f"the connection to {origin} broke before an answer came" + (f" ({detail})" if detail else ""),
                sent=True,
                retryable=True,
            )
        return Unanswered(
            f"the request to {origin} failed: {type(exc).__name__}" + (f": {detail}" if detail else ""),
            sent=False,
            retryable=False,
        )


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date, RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in _decoded(raw):
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


_HANDED_OUT = frozenset({"set-cookie", "x-csrf-token"})


def _named(raw: list[tuple[bytes, bytes]], names: frozenset[str]) -> list[tuple[str, str]]:
    """The headers among `names` (lower-case), decoded; the others are not even decoded (it runs per request)."""
    wanted = _as_bytes(names)
    return _decoded([(name, value) for name, value in raw if name.lower() in wanted])


@lru_cache(maxsize=64)
def _as_bytes(names: frozenset[str]) -> frozenset[bytes]:
    return frozenset(name.encode("latin-1") for name in names)


def _decoded(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Header names and values as text: UTF-8 where they are, else Latin-1 (as httpx guesses, per value)."""
    pairs = []
    for name, value in raw:
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        pairs.append((name.decode("latin-1"), text))
    return pairs


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip("\"' ")
            try:
                "".encode(charset)
            except LookupError:
                break
            return charset
    return "utf-8"


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
