"""One HTTP client per connection: checked URLs, credentials, quick retries, every exchange recorded masked.

Rules it keeps (for mapping authors: docs/mapping.md, §9 "Outcomes, retries and dead events" and §10 "Security rules"):
- Redirects are never followed: a 3xx is returned as it is.
- A request whose final URL would have another scheme, host or port than the connection's base URL, or that
  carries CR/LF/NUL in a header, is refused before anything is sent (`RequestRejected`).
- Quick retries (`RetryPolicy.quick_retries`) only when repeating cannot do harm: the connection failed
  before the request went out, or the server answered 503/429 asking for at most 2 s. A request that was
  sent and got no answer is repeated only if its method is idempotent or it carries an idempotency key;
  otherwise the failure says its outcome is unknown.
- Statuses are answers, not errors: `send` returns them; it raises only when there is no answer.
- Nothing unmasked leaves this module: exchanges, messages and our log lines go through the Masker, and
  httpx's own INFO log of full URLs is quieted (see `exchange.quiet_library_logs`).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx

from mapper import __version__
from mapper.run.clients.auth import MODIFYING_METHODS, Credentials, CsrfTokens, TokenCache, fetch_csrf_token
from mapper.run.clients.errors import AuthFailure, ConnectionUnusable, RequestRejected, TransportFailure
from mapper.run.clients.exchange import MAX_ANSWER_BYTES, Exchange, ExchangeKind, Response, quiet_library_logs
from mapper.run.clients.settings import ConnectionSettings, CsrfSettings, TlsSettings
from mapper.run.clients.target import (
    FORBIDDEN_IN_VALUE,
    TOKEN,
    Target,
    base_url,
    checked_headers,
    full_url,
    join,
    origin_of,
    text,
    with_params,
)
from mapper.run.clients.transport import Stack, sender_for
from mapper.run.clients.wire import Unanswered, Wire
from mapper.run.masking import Masker

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})  # RFC 9110 §9.2.2
QUICK_RETRY_STATUSES = frozenset({429, 503})
QUICK_RETRY_MAX_WAIT = 2.0  # a longer Retry-After is left to the runner's schedule
NO_JSON: Any = object()  # `json=None` sends JSON null, so "no JSON body" needs its own marker

Sleep = Callable[[float], Awaitable[None]]
Pairs = Mapping[str, Any] | Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class _Call:
    method: str
    url: Target
    headers: dict[str, str]
    params: list[tuple[str, str]]
    body: bytes | None
    timeout: float
    kind: ExchangeKind
    step: str | None
    exchanges: list[Exchange]
    repeatable: bool  # sending it twice does no harm: an idempotent method, or an idempotency key the target reads


class ConnectionClient:
    """Sends the requests of one connection (its settings already read from the environment)."""

    def __init__(
        self,
        connection: ConnectionSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        token_cache: TokenCache | None = None,
        sleep: Sleep = asyncio.sleep,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        stack: Stack = "aiohttp",
        masker: Masker | None = None,
    ) -> None:
        self.connection = connection
        name = connection.name
        auth = connection.auth
        self.masker = _masker(connection, masker if masker is not None else Masker())
        self.base_url = base_url(connection.url, name, query=connection.is_endpoint)
        self._headers = _connection_headers(connection.headers, name)
        self._params = list(connection.params)
        for key, value in auth.values.items():
            if FORBIDDEN_IN_VALUE.search(value):
                raise ConnectionUnusable(f"connection `{name}`: auth `{key}` contains a line break or NUL")
        verify = _verify(connection.tls, name)
        self._sleep = sleep
        quiet_library_logs()
        # Cookies are kept only where a CSRF token is bound to the SAP session cookie; elsewhere a lingering
        # session could act as another user after the credentials change.
        self._wire = Wire(
            sender_for(transport, stack, verify),
            self.masker,
            keep_cookies=connection.csrf is not None,
            user_agent=f"wlmap/{__version__}",
            max_answer_bytes=max_answer_bytes,
        )
        cache = token_cache if token_cache is not None else TokenCache()
        self._credentials = Credentials(auth, wire=self._wire, cache=cache, timeout=connection.timeout, connection=name)
        self._own_url = origin_of(self.base_url)
        self._csrf = CsrfTokens(connection.csrf) if connection.csrf else None
        self._csrf_url = None
        if connection.csrf:
            try:
                self._csrf_url = join(self.base_url, connection.csrf.fetch_path)
            except RequestRejected as exc:
                raise ConnectionUnusable(f"connection `{name}`: csrf fetch_path: {exc.reason}") from None

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def __aenter__(self) -> ConnectionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def send(
        self,
        method: str,
        *,
        path: str | None = None,
        url: str | None = None,
        params: Pairs | None = None,
        headers: Pairs | None = None,
        json: Any = NO_JSON,
        form: Pairs | None = None,
        content: str | bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        idempotent: bool | None = None,
        kind: ExchangeKind = "request",
        step: str | None = None,
        exchanges: list[Exchange],
    ) -> Response:
        """Send one request (with quick retries) and return the answer, whatever its status.

        `path` (rendered and percent-encoded by the caller) is joined to the base URL; `url` is a full
        http(s) URL; neither means the connection's URL itself. `idempotent` overrides the method's rule
        (a GraphQL query is safe to repeat although it is a POST). `step` names the sender on every request
        this call makes (see `exchange.STEP_EXTENSION`).
        """
        method = method.upper()
        if not TOKEN.fullmatch(method):
            raise RequestRejected(f"`{method}` is not an HTTP method")
        call_headers = {**self._headers, **checked_headers(_pairs(headers))}
        call_headers.setdefault("accept", "application/json")
        body, body_type = _body(json, form, content, content_type)
        if body_type and "content-type" not in call_headers:
            call_headers["content-type"] = body_type
        header_name = self.connection.idempotency_header
        if idempotency_key is not None and header_name:
            call_headers.update(checked_headers([(header_name, idempotency_key)]))
        step_params = [(key, text(value)) for key, value in _pairs(params)]
        names = {key for key, _ in step_params}
        call_params = [(key, value) for key, value in self._params if key not in names] + step_params
        repeatable = (
            idempotent
            if idempotent is not None
            else (method in IDEMPOTENT_METHODS or (idempotency_key is not None and header_name is not None))
        )
        seconds = timeout if timeout is not None else self.connection.timeout
        target = self._target(path, url)
        call = _Call(method, target, call_headers, call_params, body, seconds, kind, step, exchanges, repeatable)
        return await self._send(call)

    async def _send(self, call: _Call) -> Response:
        """The call's attempts: quick retries where repeating cannot do harm (see the module docstring)."""
        retry, repeatable = self.connection.retry, call.repeatable
        attempts = 1 + max(0, retry.quick_retries)
        for attempt in range(1, attempts + 1):
            try:
                response = await self._attempt(call, attempt)
            except Unanswered as failure:
                unknown = failure.sent and failure.retryable  # sent, and no answer came back
                if failure.retryable and retry.network_errors and attempt < attempts and (repeatable or not unknown):
                    await self._sleep(0.2 * 2 ** (attempt - 1))
                    continue
                reason = failure.reason + (f" (tried {attempt} times)" if attempt > 1 else "")
                if unknown and not repeatable:
                    reason += (
                        f"; the request was sent, so it may have been applied (outcome unknown); it was "
                        f"not repeated because {call.method} is not idempotent and no idempotency key was sent"
                    )
                error = AuthFailure if failure.auth else TransportFailure
                raise error(reason, retryable=failure.retryable, outcome_unknown=unknown) from None
            wait = response.retry_after
            if (
                response.status in QUICK_RETRY_STATUSES
                and response.status in retry.statuses
                and wait is not None
                and wait <= QUICK_RETRY_MAX_WAIT
                and attempt < attempts
            ):
                await self._sleep(wait)
                continue
            return response if attempt == 1 else replace(response, attempts=attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(self, call: _Call, attempt: int) -> Response:
        headers = dict(call.headers)
        params = list(call.params)
        token = await self._apply_credentials(call, headers, params, attempt)
        csrf_token = None
        if self._csrf is not None and call.method in MODIFYING_METHODS:
            csrf_token = await self._csrf_token(call, attempt)
            headers[self._csrf.csrf.header.lower()] = csrf_token
        response = await self._exchange(call, headers, params, attempt)
        notes: list[str] = []
        if response.status == 401 and self._credentials.refreshable:
            self._credentials.invalidate(token)
            await self._apply_credentials(call, headers, params, attempt)
            response = await self._exchange(call, headers, params, attempt)
            notes.append(
                "the target answered 401 to the OAuth2 token; fetched a new token and sent the request once more"
            )
        if self._csrf is not None and csrf_token is not None and _csrf_required(response, self._csrf.csrf):
            self._csrf.invalidate(csrf_token)
            csrf_token = await self._csrf_token(call, attempt)
            headers[self._csrf.csrf.header.lower()] = csrf_token
            response = await self._exchange(call, headers, params, attempt)
            note = "SAP rejected the CSRF token (403); fetched a new token and sent the request once more"
            if _csrf_required(response, self._csrf.csrf):
                note += ", and SAP rejected the new token too"
            notes.append(note)
        return replace(response, notes=tuple(notes)) if notes else response

    async def _apply_credentials(
        self, call: _Call, headers: dict[str, str], params: list[tuple[str, str]], attempt: int
    ) -> str | None:
        return await self._credentials.apply(headers, params, exchanges=call.exchanges, attempt=attempt, step=call.step)

    async def _exchange(
        self, call: _Call, headers: dict[str, str], params: list[tuple[str, str]], attempt: int
    ) -> Response:
        request = self._wire.request(
            call.method,
            with_params(call.url, params),
            headers=headers,
            content=call.body,
            timeout=call.timeout,
            kind=call.kind,
            step=call.step,
        )
        return await self._wire.exchange(request, exchanges=call.exchanges, attempt=attempt)

    async def _csrf_token(self, call: _Call, attempt: int) -> str:
        assert self._csrf is not None and self._csrf_url is not None
        csrf, url = self._csrf, self._csrf_url

        async def fetch() -> str:
            headers = {**self._headers, "accept": "application/json"}
            params = list(self._params)
            await self._apply_credentials(call, headers, params, attempt)
            target = with_params(url, params)
            request = self._wire.request(
                "GET", target, headers=headers, timeout=call.timeout, kind="csrf-fetch", step=call.step
            )
            return await fetch_csrf_token(
                self._wire, request, csrf.csrf.header, exchanges=call.exchanges, attempt=attempt
            )

        return await csrf.get(fetch)

    def _target(self, path: str | None, url: str | None) -> Target:
        if path is not None and url is not None:
            raise RequestRejected("a request takes a `path` or a `url`, not both")
        if url is not None:
            return full_url(url)
        if path is None:
            return self._own_url
        return join(self.base_url, path)


def _masker(connection: ConnectionSettings, masker: Masker) -> Masker:
    """The masker (shared by every client of a mapping) told the connection's secrets, its named values and all
    auth material (the token URL is an address, not a secret), with the API key's header or parameter name
    among the sensitive ones."""
    auth = connection.auth
    for variable, value in connection.labels:
        masker.label(variable, value)
    for secret in [*connection.secrets, *(value for key, value in auth.values.items() if key != "token_url")]:
        masker.add(secret)
    if auth.kind == "api_key" and auth.name and auth.placement == "header":
        masker.sensitive_headers = masker.sensitive_headers | {auth.name.lower()}
    elif auth.kind == "api_key" and auth.name:
        masker.sensitive_params = masker.sensitive_params | {auth.name.lower()}
    if auth.kind == "basic":
        masker.add_basic(auth.values.get("username", ""), auth.values.get("password", ""))
    if auth.kind == "oauth2":
        masker.add_basic(quote_plus(auth.values.get("client_id", "")), quote_plus(auth.values.get("client_secret", "")))
    return masker


def _pairs(values: Pairs | None) -> Iterable[tuple[str, Any]]:
    if values is None:
        return ()
    return values.items() if isinstance(values, Mapping) else values


def _connection_headers(pairs: Iterable[tuple[str, str]], connection: str) -> dict[str, str]:
    try:
        return checked_headers(pairs)
    except RequestRejected as exc:
        raise ConnectionUnusable(f"connection `{connection}`: {exc.reason}") from None


def _body(
    json: Any, form: Pairs | None, content: str | bytes | None, content_type: str | None
) -> tuple[bytes | None, str | None]:
    given = [
        kind
        for kind, present in (
            ("json", json is not NO_JSON),
            ("form", form is not None),
            ("content", content is not None),
        )
        if present
    ]
    if len(given) > 1:
        raise TypeError(f"send() takes one body, got {' and '.join(given)}")
    if json is not NO_JSON:
        data = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
        return data, content_type or "application/json"
    if form is not None:
        fields = [
            (key, item)
            for key, value in _pairs(form)
            for item in (value if isinstance(value, list | tuple) else [value])
        ]
        return urlencode([(key, text(item)) for key, item in fields]).encode(), (
            content_type or "application/x-www-form-urlencoded"
        )
    if content is not None:
        if isinstance(content, str):
            return content.encode(), content_type or "text/plain; charset=utf-8"
        return content, content_type or "application/octet-stream"
    return None, content_type


def _csrf_required(response: Response, csrf: CsrfSettings) -> bool:
    answer = response.headers.get(csrf.header.lower(), "")
    return response.status == 403 and answer.strip().lower() == "required"


def _verify(tls: TlsSettings, connection: str) -> ssl.SSLContext | bool:
    if tls.ca_file is None and tls.client_cert is None:
        return tls.verify
    try:
        context = ssl.create_default_context(cafile=tls.ca_file if tls.verify else None)
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls.client_cert:
            context.load_cert_chain(tls.client_cert, tls.client_key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConnectionUnusable(f"connection `{connection}`: cannot use its TLS files: {reason}") from None
    return context
