"""Credentials on requests: basic, bearer, API key, OAuth2 client credentials (cached, shared), SAP CSRF."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

from mapper.run.clients.errors import AuthFailure, ConnectionUnusable
from mapper.run.clients.exchange import Exchange, Response
from mapper.run.clients.settings import AuthSettings, CsrfSettings
from mapper.run.clients.transport import Outgoing
from mapper.run.clients.wire import Unanswered, Wire

MODIFYING_METHODS = frozenset({"POST", "PUT", "PATCH", "MERGE", "DELETE"})
REFRESH_MARGIN = 60.0  # seconds before expiry at which a cached OAuth2 token is replaced

Clock = Callable[[], float]
TokenFetch = Callable[[], Awaitable[tuple[str, float | None]]]


@dataclass
class _Token:
    value: str
    expires_at: float | None  # None: the endpoint gave no lifetime; used until a target answers 401


class TokenCache:
    """OAuth2 access tokens shared by all clients and events of a process (use it within one event loop).

    A token is replaced when it is within 60 s of expiry (half its lifetime for short-lived tokens), and
    only one fetch per key runs at a time: callers that arrive during a fetch wait for its token.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[Hashable, _Token] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    def _valid(self, key: Hashable) -> str | None:
        token = self._tokens.get(key)
        if token is None:
            return None
        if token.expires_at is not None and self.clock() >= token.expires_at:
            return None
        return token.value

    async def get(self, key: Hashable, fetch: TokenFetch) -> str:
        value = self._valid(key)
        if value is not None:
            return value
        async with self._locks.setdefault(key, asyncio.Lock()):
            value = self._valid(key)  # fetched by another task while this one waited
            if value is not None:
                return value
            value, expires_in = await fetch()
            expires_at = None
            if expires_in is not None:
                expires_at = self.clock() + expires_in - min(REFRESH_MARGIN, expires_in / 2)
            self._tokens[key] = _Token(value, expires_at)
            return value

    def invalidate(self, key: Hashable, value: str) -> None:
        """Forget the token `value` (a target refused it); a newer token fetched meanwhile is kept."""
        token = self._tokens.get(key)
        if token is not None and token.value == value:
            del self._tokens[key]


@dataclass(frozen=True)
class OAuth2Settings:
    token_url: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    audience: str | None
    client_auth: str  # "basic" or "body"

    @property
    def cache_key(self) -> tuple[str, str, tuple[str, ...], str | None]:
        return (self.token_url, self.client_id, self.scopes, self.audience)


_REQUIRED = {
    "none": (),
    "basic": ("username", "password"),
    "bearer": ("token",),
    "api_key": ("value",),
    "oauth2": ("token_url", "client_id", "client_secret"),
}


class Credentials:
    """Puts one connection's credentials on each request; for OAuth2, a token from the shared cache."""

    def __init__(
        self,
        auth: AuthSettings,
        *,
        wire: Wire,
        cache: TokenCache,
        timeout: float,
        connection: str,
    ) -> None:
        values = auth.values
        missing = [name for name in _REQUIRED[auth.kind] if not values.get(name)]
        if missing:
            raise ConnectionUnusable(
                f"connection `{connection}`: {auth.kind} auth needs "
                + " and ".join(f"`{name}`" for name in missing)
                + " (empty or missing)"
            )
        if auth.kind == "api_key" and not auth.name:
            raise ConnectionUnusable(f"connection `{connection}`: api_key auth needs a header or parameter name")
        self.auth = auth
        self.values = values
        self.wire = wire
        self.cache = cache
        self.timeout = timeout
        self.oauth2: OAuth2Settings | None = None
        if auth.kind == "oauth2":
            token_url = values["token_url"]
            if urlsplit(token_url).scheme not in ("http", "https") or "@" in urlsplit(token_url).netloc:
                raise ConnectionUnusable(
                    f"connection `{connection}`: the OAuth2 token_url must be an "
                    "http(s) URL without a user name or password in it"
                )
            self.oauth2 = OAuth2Settings(
                token_url, values["client_id"], values["client_secret"], auth.scopes, auth.audience, auth.client_auth
            )

    @property
    def refreshable(self) -> bool:
        return self.oauth2 is not None

    async def apply(
        self,
        headers: dict[str, str],
        params: list[tuple[str, str]],
        *,
        exchanges: list[Exchange],
        attempt: int,
        step: str | None,
    ) -> str | None:
        """Add the credentials to `headers` (lower-case names) or `params`; returns the OAuth2 token used."""
        kind = self.auth.kind
        if kind == "basic":
            headers["authorization"] = basic_authorization(self.values["username"], self.values["password"])
        elif kind == "bearer":
            headers["authorization"] = f"Bearer {self.values['token']}"
        elif kind == "api_key":
            name = self.auth.name or ""
            if self.auth.placement == "query":
                params[:] = [(key, value) for key, value in params if key != name]
                params.append((name, self.values["value"]))
            else:
                headers[name.lower()] = self.values["value"]
        elif self.oauth2 is not None:
            settings = self.oauth2

            async def fetch() -> tuple[str, float | None]:
                return await fetch_oauth2_token(
                    self.wire, settings, self.timeout, exchanges=exchanges, attempt=attempt, step=step
                )

            token = await self.cache.get(settings.cache_key, fetch)
            self.wire.masker.remember(token)  # fetched by any client sharing the cache: still a secret here
            headers["authorization"] = f"Bearer {token}"
            return token
        return None

    def invalidate(self, token: str | None) -> None:
        if self.oauth2 is not None and token is not None:
            self.cache.invalidate(self.oauth2.cache_key, token)


def basic_authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


async def fetch_oauth2_token(
    wire: Wire,
    settings: OAuth2Settings,
    timeout: float,
    *,
    exchanges: list[Exchange],
    attempt: int,
    step: str | None,
) -> tuple[str, float | None]:
    """POST a client-credentials grant (RFC 6749 §4.4) and return the token with its lifetime in seconds."""
    form = [("grant_type", "client_credentials")]
    if settings.scopes:
        form.append(("scope", " ".join(settings.scopes)))
    if settings.audience:
        form.append(("audience", settings.audience))
    headers = {"accept": "application/json", "content-type": "application/x-www-form-urlencoded"}
    if settings.client_auth == "body":
        form += [("client_id", settings.client_id), ("client_secret", settings.client_secret)]
    else:
        # RFC 6749 §2.3.1: id and secret are form-encoded before they are joined for HTTP basic.
        headers["authorization"] = basic_authorization(
            quote_plus(settings.client_id), quote_plus(settings.client_secret)
        )
    content = urlencode(form).encode()
    request = wire.request(
        "POST", settings.token_url, content=content, headers=headers, timeout=timeout, kind="oauth2-token", step=step
    )
    try:
        response = await wire.exchange(request, exchanges=exchanges, attempt=attempt, reveals=_issued_tokens)
    except Unanswered as failure:
        raise Unanswered(
            f"could not get an OAuth2 token: {failure.reason}", sent=False, retryable=failure.retryable, auth=True
        ) from None
    body = response.json()
    if not 200 <= response.status < 300:
        reason = f"the OAuth2 token endpoint {response.url} answered {response.status}"
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            reason += f": {body['error']}"
            if isinstance(body.get("error_description"), str):
                reason += f" ({body['error_description']})"
        raise AuthFailure(
            wire.masker.text(reason), retryable=_worth_retrying(response.status), retry_after=response.retry_after
        )
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthFailure(
            f"the OAuth2 token endpoint {response.url} answered {response.status} without an "
            f"access_token: {response.excerpt(200)}",
            retryable=False,
        )
    wire.masker.remember(token)
    return token, _seconds(body.get("expires_in"))


class CsrfTokens:
    """The SAP CSRF token of one connection; its session cookies live in the connection's cookie jar."""

    def __init__(self, csrf: CsrfSettings) -> None:
        self.csrf = csrf
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def get(self, fetch: Callable[[], Awaitable[str]]) -> str:
        if self._token is not None:
            return self._token
        async with self._lock:
            if self._token is None:
                self._token = await fetch()
            return self._token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None


async def fetch_csrf_token(
    wire: Wire, request: Outgoing, header: str, *, exchanges: list[Exchange], attempt: int
) -> str:
    """GET with `x-csrf-token: Fetch`; SAP answers with the token in the same header and a session cookie."""
    request.headers[header.lower()] = "Fetch"
    try:
        response = await wire.exchange(
            request,
            exchanges=exchanges,
            attempt=attempt,
            reveals=lambda answer: [answer.headers.get(header.lower())],
        )
    except Unanswered as failure:
        raise Unanswered(
            f"could not fetch a CSRF token: {failure.reason}", sent=False, retryable=failure.retryable, auth=True
        ) from None
    where = f"GET {wire.masker.text(request.url.path)}"
    if not 200 <= response.status < 300:
        raise AuthFailure(
            f"SAP did not hand out a CSRF token: {where} answered {_status(response)}",
            retryable=_worth_retrying(response.status),
            retry_after=response.retry_after,
        )
    token = response.headers.get(header.lower(), "")
    if not token or token.lower() in ("fetch", "required"):
        raise AuthFailure(
            f"SAP did not hand out a CSRF token: {where} answered {response.status} without a `{header}` header",
            retryable=False,
        )
    wire.masker.remember(token)
    return token


def _issued_tokens(response: Response) -> list[str | None]:
    body = response.json()
    if not isinstance(body, dict):
        return []
    return [value for key, value in body.items() if key.endswith("_token") and isinstance(value, str)]


def _status(response: Response) -> str:
    if 300 <= response.status < 400 and "location" in response.headers:
        location = response.masker.url(response.headers["location"])
        return f"{response.status} (a redirect to {location}, not followed)"
    return str(response.status)


def _worth_retrying(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            return None
    else:
        return None
    return seconds if seconds > 0 else None
