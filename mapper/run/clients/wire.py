"""Sends one request and records it: defaults and session cookies on, masked Exchange and Response out.

httpx.AsyncClient's per-request machinery (auth flows, redirect handling, a cookie jar run through urllib for
every answer) does nothing wlmap wants: redirects are never followed, credentials are ours, and cookies are kept
only for SAP's CSRF session. So the wire builds each request once (`transport.Outgoing`), hands it to the
sender, and makes the trace record from the same values it sent.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache

import httpx
from yarl import URL

from mapper.run.clients.exchange import (
    DEFAULT_HEADERS,
    EXCERPT_LIMIT,
    MAX_ANSWER_BYTES,
    Exchange,
    ExchangeKind,
    Response,
    charset,
    log,
)
from mapper.run.clients.target import wire_url
from mapper.run.clients.transport import AiohttpSender, HttpxSender, Outgoing, RawHeaders, Received, TooLarge
from mapper.run.masking import Masker

Reveals = Callable[[Response], Iterable[str | None]]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # httpx records `content-length: 0` on these without a body


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
    """Sends requests with one sender, records each exchange masked, never follows redirects."""

    def __init__(
        self,
        sender: AiohttpSender | HttpxSender,
        masker: Masker,
        *,
        keep_cookies: bool,
        user_agent: str,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.sender = sender
        self.masker = masker
        self.keep_cookies = keep_cookies
        self.cookies = httpx.Cookies()  # filled only when keep_cookies
        self.max_answer_bytes = max_answer_bytes
        self._defaults = {**DEFAULT_HEADERS, "user-agent": user_agent}

    def request(
        self,
        method: str,
        url: URL | str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        kind: ExchangeKind,
        step: str | None,
        content: bytes | None = None,
    ) -> Outgoing:
        """A request with the default headers under `headers` (lower-case names), and the session cookies;
        `step` and `kind` say who sends it (see exchange.STEP_EXTENSION)."""
        merged = self._defaults.copy()
        merged.update(headers)
        request = Outgoing(
            method, wire_url(url) if isinstance(url, str) else url, merged, content or b"", timeout, kind, step
        )
        if self.keep_cookies and self.cookies and "cookie" not in merged:
            probe = httpx.Request(method, str(request.url))  # httpx's jar picks the cookies for this URL
            self.cookies.set_cookie_header(probe)
            if "cookie" in probe.headers:
                merged["cookie"] = probe.headers["cookie"]
        return request

    async def aclose(self) -> None:
        await self.sender.aclose()

    async def exchange(
        self,
        request: Outgoing,
        *,
        exchanges: list[Exchange],
        attempt: int,
        reveals: Reveals | None = None,
    ) -> Response:
        """Send and record; `reveals` names secrets in the answer (a new token) to keep out of the record."""
        sensitive = self.masker.sensitive_headers
        self.masker.learn_sent([(k, v) for k, v in request.headers.items() if k in sensitive])  # a target may echo it
        started = time.perf_counter()
        try:
            answer = await self.sender.send(request, self.max_answer_bytes)
        except (httpx.HTTPError, TooLarge) as exc:
            failure = self._unanswered(request, exc)
            exchanges.append(self._record(request, attempt, started, error=failure.reason))
            log.debug("%s %s: %s", request.method, self.masker.url(str(request.url)), failure.reason)
            raise failure from None
        if self.keep_cookies:
            self._keep_cookies(request, answer)
        headers = _header_dict(answer.headers)
        self.masker.learn_received(_named(answer.headers, _HANDED_OUT))  # session cookies and CSRF tokens
        url = str(request.url)
        shown_url = self.masker.url(url)
        response = Response(answer.status, headers, answer.content, _ms(started), shown_url, masker=self.masker)
        for secret in reveals(response) if reveals else ():
            if secret:
                self.masker.remember(secret)
                shown_url = self.masker.url(url)
        exchanges.append(self._record(request, attempt, started, response=response, url=shown_url))
        log.debug("%s %s → %d in %.0f ms", request.method, response.url, response.status, response.elapsed_ms)
        return response

    def _keep_cookies(self, request: Outgoing, answer: Received) -> None:
        probe = httpx.Request(request.method, str(request.url))
        self.cookies.extract_cookies(httpx.Response(answer.status, headers=list(answer.headers), request=probe))

    def _record(
        self,
        request: Outgoing,
        attempt: int,
        started: float,
        *,
        response: Response | None = None,
        error: str | None = None,
        url: str | None = None,
    ) -> Exchange:
        mask = self.masker
        content = request.content
        headers = request.headers
        body = content.decode(charset(headers.get("content-type", "")), errors="replace") if content else ""
        answer = response.text if response else ""
        return Exchange(
            kind=request.kind,
            method=request.method,
            url=url if url is not None else mask.url(str(request.url)),
            request_headers=mask.headers(_as_recorded(request)),
            request_body=_excerpt(mask, body, len(content)),
            status=response.status if response else None,
            response_headers=mask.headers(response.headers) if response else {},
            response_body=_excerpt(mask, answer, len(response.content)) if response else "",
            duration_ms=_ms(started),
            error=error,
            attempt=attempt,
            request_bytes=len(content) if len(body) > EXCERPT_LIMIT else 0,
            response_bytes=len(response.content) if response and len(answer) > EXCERPT_LIMIT else 0,
        )

    def _unanswered(self, request: Outgoing, exc: Exception) -> Unanswered:
        url = request.url
        origin = self.masker.url(f"{url.scheme}://{url.raw_authority}")
        detail = self.masker.text(str(exc).strip())
        within = f" within {request.timeout:g} s"
        if isinstance(exc, TooLarge):
            return Unanswered(
                f"{origin} answered with more than {exc.limit} bytes; the answer was refused",
                sent=True,
                retryable=False,
            )
        if isinstance(exc, httpx.ConnectTimeout):
            return Unanswered(f"could not connect to {origin}{within}", sent=False, retryable=True)
        if isinstance(exc, httpx.PoolTimeout):
            return Unanswered(f"no free connection to {origin}{within}", sent=False, retryable=True)
        if isinstance(exc, httpx.ConnectError):
            if _certificate_problem(exc):
                return Unanswered(
                    f"the TLS certificate of {origin} was not accepted: {detail}", sent=False, retryable=False
                )
            return Unanswered(
                f"could not connect to {origin}" + (f" ({detail})" if detail else ""), sent=False, retryable=True
            )
        if isinstance(exc, httpx.WriteTimeout):
            return Unanswered(f"could not send the request to {origin}{within}", sent=True, retryable=True)
        if isinstance(exc, httpx.ReadTimeout):
            return Unanswered(f"{origin} did not answer{within}", sent=True, retryable=True)
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


def _header_dict(raw: RawHeaders) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in _decoded(raw):
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


_HANDED_OUT = frozenset({"set-cookie", "x-csrf-token"})


def _named(raw: RawHeaders, names: frozenset[str]) -> list[tuple[str, str]]:
    """The headers among `names` (lower-case), decoded; the others are not even decoded (it runs per request)."""
    wanted = _as_bytes(names)
    return _decoded([(name, value) for name, value in raw if name.lower() in wanted])


@lru_cache(maxsize=64)
def _as_bytes(names: frozenset[str]) -> frozenset[bytes]:
    return frozenset(name.encode("latin-1") for name in names)


def _decoded(raw: RawHeaders) -> list[tuple[str, str]]:
    """Header names and values as text: UTF-8 where they are, else Latin-1 (as httpx guesses, per value)."""
    pairs = []
    for name, value in raw:
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        pairs.append((name.decode("latin-1"), text))
    return pairs


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _as_recorded(request: Outgoing) -> list[tuple[str, str]]:
    """The headers as the trace shows them: with `host` and `content-length` as they go on the wire."""
    url = request.url
    pairs = [("host", url.raw_authority), *request.headers.items()]
    if request.content or request.method in _BODY_METHODS:
        pairs.append(("content-length", str(len(request.content))))
    return pairs
