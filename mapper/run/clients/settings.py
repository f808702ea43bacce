"""What a client knows of its connection: plain values, the environment already read (see `run.connections`).

The clients never see the mapping's templates: the runner renders a connection's settings against the
environment once and hands these records over, so the clients can be used, and tested, with plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

AuthKind = Literal["none", "basic", "bearer", "api_key", "oauth2"]


@dataclass(frozen=True)
class AuthSettings:
    kind: AuthKind = "none"
    values: Mapping[str, str] = field(default_factory=dict)  # username/password, token, value, token_url/client_id/…
    name: str | None = None  # api_key: header or parameter name
    placement: Literal["header", "query"] = "header"  # api_key
    scopes: tuple[str, ...] = ()  # oauth2
    audience: str | None = None  # oauth2
    client_auth: Literal["basic", "body"] = "basic"  # oauth2


@dataclass(frozen=True)
class CsrfSettings:
    """SAP's CSRF handshake: where the token is fetched, and the header that carries it."""

    fetch_path: str = "/"
    header: str = "x-csrf-token"


@dataclass(frozen=True)
class TlsSettings:
    verify: bool = True
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None


@dataclass(frozen=True)
class RetrySettings:
    """What the client's quick retries need; the schedule of later retries is the worker's business."""

    statuses: frozenset[int]  # answers worth another try (a quick one only for 429/503 with a short Retry-After)
    network_errors: bool
    quick_retries: int


@dataclass(frozen=True)
class ConnectionSettings:
    """One connection of a mapping, its templates rendered: every value here is what goes on the wire."""

    name: str
    url: str  # the base URL paths are joined to, or (GraphQL) the endpoint itself
    is_endpoint: bool  # the URL is an endpoint (GraphQL `url`), which may carry a query string
    timeout: float
    retry: RetrySettings
    headers: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    tls: TlsSettings = TlsSettings()
    auth: AuthSettings = AuthSettings()
    csrf: CsrfSettings | None = None
    idempotency_header: str | None = None
    secrets: tuple[str, ...] = ()  # the environment values among the settings that are secrets: masked `***`
    labels: tuple[tuple[str, str], ...] = ()  # (variable, value) of the others: shown as `‹variable›`
