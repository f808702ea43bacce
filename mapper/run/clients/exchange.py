"""One HTTP exchange as values: the Exchange record (masked, for traces) and the Response (for the runner).

`wire.Wire` makes both from what it sent and what came back.

Logging: httpx logs every request's full URL (query string included) at INFO on the "httpx" logger
(https://www.python-httpx.org/logging/), which would put API keys sent as query parameters into logs.
`quiet_library_logs()` raises that logger (and httpcore's) to WARNING unless someone chose a level; our own
logger ("mapper.run.clients") only ever logs masked URLs, and only at DEBUG.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any, Literal

from mapper.run.masking import Masker

ExchangeKind = Literal["request", "oauth2-token", "csrf-fetch", "graphql"]

EXCERPT_LIMIT = 4096  # characters of each body kept in an Exchange
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # an answer larger than this is refused: answers are untrusted

# What httpx.AsyncClient sends by default (gzip and deflate are always decoded; no br/zstd decoder is assumed).
DEFAULT_HEADERS = {"accept": "*/*", "accept-encoding": "gzip, deflate", "connection": "keep-alive"}

# Who sends a request travels with it (`transport.Outgoing.step`/`.kind`), and reaches an httpx transport as
# these request extensions: the step's name ("query" for the mapping's GraphQL query; a CSRF fetch or an OAuth2
# token request carries the step it was made for) and the kind of exchange. A stub transport answers per step
# from them.
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
        return self.content.decode(charset(self.headers.get("content-type", "")), errors="replace")

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


def charset(content_type: str) -> str:
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
