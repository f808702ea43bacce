"""The HTTP face of wlmap: verify a webhook, store it with its jobs, acknowledge. It never runs a mapping.

Order of checks, cheapest and least revealing first: method (405), content type (415, also when there is
none), declared and actual size (413, counted while streaming; 408 when the body is not in within the body
timeout), signature on the raw bytes (401), JSON (400); then ONE durable transaction (503 with Retry-After when
it fails) and only then 200. Every refusal is `{"error": "<reason>"}` with a short, stable reason.

Unsigned webhooks (`allow_unsigned`, for Scope AR's legacy org-wide webhooks, which carry no signature) pass
only when they are legacy-shaped, carry no `X-Scope-*` header (a subscription delivery is always signed),
come from an allowed address when `unsigned_from` is set, and a mapping that allows unsigned webhooks wants
them; everything else without a valid signature is 401. Credential headers a proxy may add (`Authorization`,
`Cookie`, ...) are stored masked: the signature check needs only the body and the signature header.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mapper.events import LEGACY, Event, normalise
from mapper.run.masking import hide_headers
from mapper.service.metrics import CONTENT_TYPE, Metrics
from mapper.service.options import BODY_TIMEOUT, DEDUPE_WINDOW, MAX_BODY, WEBHOOK_PATH
from mapper.service.signature import MISSING_HEADER, SignatureError, SignatureScheme, verify
from mapper.service.store import Ingested, NewDelivery, NewJob, Store, StoreError, run_blocking

log = logging.getLogger("wlmap.listener")

MAX_DELIVERY_ID: Final = 200  # characters; Scope sends a UUID (36)
_JSON_TYPES: Final = ("application/json",)

Readiness = Callable[[], str | None]  # blocking; None when ready, else why not
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

STORE_RECHECK: Final = 30.0  # seconds /readyz says "not ready" after the store refused a webhook (then it is tried)
UNSIGNED_NOT_WANTED: Final = "no mapping accepts this webhook unsigned"
UNSIGNED_ADDRESS: Final = "unsigned webhooks are not accepted from this address"
BODY_TOO_SLOW: Final = "body not received in time"


class Router(Protocol):
    """The jobs the mappings in force want for an event (`unsigned`: only mappings that allow unsigned ones)."""

    def __call__(self, event: Event, *, unsigned: bool = False) -> Sequence[NewJob]: ...


Explain = Callable[[Event], str]  # why no mapping wants an event (kept with an ignored webhook)


@dataclass(frozen=True)
class ListenerOptions:
    """How webhooks are accepted."""

    path: str = WEBHOOK_PATH
    secrets: tuple[str, ...] = ()
    scheme: SignatureScheme = field(default_factory=SignatureScheme)
    allow_unsigned: bool = False  # take legacy webhooks WITHOUT a signature header; a bad one is still 401
    unsigned_from: tuple[Network, ...] = ()  # with allow_unsigned: only from these networks (none: any address)
    max_body: int = MAX_BODY
    body_timeout: float = BODY_TIMEOUT  # seconds for the whole body to arrive once the request head is in
    dedupe_window: float = DEDUPE_WINDOW
    retry_after: int = 5  # seconds, sent with 503


Answer = tuple[int, dict[str, Any], dict[str, str] | None]  # status, JSON body, extra headers


def _refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> Answer:
    return status, {"error": reason}, headers


async def _send_json(send: Send, answer: Answer) -> None:
    """The answer as starlette's JSONResponse would send it (same bytes and headers), without building one."""
    status, content, extra = answer
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    headers = [(b"content-length", str(len(body)).encode("latin-1")), (b"content-type", b"application/json")]
    if extra:
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Headers(Mapping[str, str]):
    """A request's headers decoded once: lower-case names (as ASGI gives them), the first value of each;
    `getlist` and `pairs` keep repeats (the signature check refuses one header sent with two values)."""

    __slots__ = ("_first", "pairs")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self.pairs = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw]
        self._first: dict[str, str] = {}
        for name, value in self.pairs:
            self._first.setdefault(name, value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getlist(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.pairs if key == wanted]


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _summary(event: Event) -> str:
    what = event.topic or event.raw_name or "unknown event"
    text = f"{what} {event.resource_type or '-'} {event.resource_id or '-'}"
    return text if len(text) <= 200 else text[:197] + "..."


def _dedupe_key(event: Event, body: bytes) -> str:
    """Without a delivery id, re-sends share topic and body; two topics for one resource do not."""
    if event.delivery_id is not None:
        return f"id:{event.delivery_id}"
    digest = hashlib.sha256((event.topic or "").encode("utf-8", "replace") + b"\n" + body).hexdigest()
    return f"sha256:{digest}"


class Webhooks:
    """The ASGI endpoint that takes webhooks (every method reaches it, so a wrong one gets a JSON 405)."""

    def __init__(
        self,
        store: Store,
        route: Router,
        options: ListenerOptions,
        metrics: Metrics,
        executor: Executor | None,
        on_stored: Callable[[], None],
        explain: Explain | None = None,
    ) -> None:
        self.store, self.route, self.options, self.metrics = store, route, options, metrics
        self.executor, self.on_stored, self.explain = executor, on_stored, explain
        self._refused: tuple[float, str] | None = None  # when the store last refused a webhook, and why

    def store_problem(self) -> str | None:
        """Why the store is not taking webhooks, if it refused the last one less than STORE_RECHECK ago.

        A store can refuse a webhook while a small probe write still works (a full disk or `--store-max-mb`
        leaves room for a row's update, not for a webhook); after STORE_RECHECK seconds the next webhook tries
        again, so a load balancer that stopped sending finds out when the disk has room again.
        """
        if self._refused is None or time.monotonic() - self._refused[0] > STORE_RECHECK:
            return None
        return f"store not writable: the last webhook could not be stored ({self._refused[1]})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        self.metrics.received.inc()
        answer = await self.handle(scope, receive)
        if answer[0] < 300:
            self.metrics.acknowledged.inc()
            self.metrics.ack_seconds.observe(time.perf_counter() - started)
        else:
            self.metrics.rejected.inc(reason=str(answer[0]))
        await _send_json(send, answer)

    async def handle(self, scope: Scope, receive: Receive) -> Answer:
        if scope["method"] != "POST":
            return _refuse(405, "method not allowed", {"Allow": "POST"})
        headers = _Headers(scope["headers"])
        if not _is_json(headers.get("content-type", "")):
            return _refuse(415, "content type must be application/json")
        body_or_refusal = await self._read_body(headers, receive)
        if isinstance(body_or_refusal, tuple):
            return body_or_refusal
        body = body_or_refusal
        unsigned = self._may_be_unsigned(headers)
        if not unsigned:
            try:
                verify(body, headers, self.options.secrets, self.options.scheme)
            except SignatureError as exc:
                log.warning("webhook refused: %s", exc.reason)
                return _refuse(401, exc.reason)
        try:
            payload = json.loads(body.decode("utf-8-sig"), parse_constant=_no_constants)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _refuse(400, "body is not JSON")
        if not isinstance(payload, dict):
            return _refuse(400, "body is not a JSON object")
        event = normalise(payload, dict(headers.pairs))  # a repeated header: its last value, as before
        if event.delivery_id is not None and len(event.delivery_id) > MAX_DELIVERY_ID:
            return _refuse(400, "delivery id is too long")
        if unsigned:
            return await self._unsigned(scope, headers, event, body)
        return await self._store(headers, event, body, "verified", list(self.route(event)))

    def _may_be_unsigned(self, headers: _Headers) -> bool:
        """Whether the request may pass without a signature: the flag is on, it carries no signature header, and
        none of Scope's subscription headers (a subscription delivery is always signed: scope-ar.md §1b)."""
        if not self.options.allow_unsigned or headers.getlist(self.options.scheme.header):
            return False
        return not any(name.startswith("x-scope-") for name in headers)

    async def _unsigned(self, scope: Scope, headers: _Headers, event: Event, body: bytes) -> Answer:
        """A legacy webhook without a signature: from an allowed address, for mappings that allow it, or 401."""
        if event.generation != LEGACY:
            log.warning("webhook refused: unsigned and not a legacy webhook")
            return _refuse(401, MISSING_HEADER)
        if self.options.unsigned_from and not _from(scope, self.options.unsigned_from):
            log.warning("webhook refused: unsigned, from %s", _client(scope))
            return _refuse(401, UNSIGNED_ADDRESS)
        jobs = list(self.route(event, unsigned=True))
        if not jobs:
            log.warning("webhook refused: unsigned, and %s", UNSIGNED_NOT_WANTED)
            return _refuse(401, UNSIGNED_NOT_WANTED)
        return await self._store(headers, event, body, "unsigned", jobs)

    async def _read_body(self, headers: _Headers, receive: Receive) -> bytes | Answer:
        limit = self.options.max_body
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return _refuse(400, "invalid content-length")
            if int(declared) > limit:  # refused before a byte of it is read
                return _refuse(413, "body too large", {"Connection": "close"})
        chunks = bytearray()
        # One deadline for the whole body: a client sending a byte a second, or promising more bytes than it
        # sends, holds a connection and a task for at most this long (uvicorn has no body timeout of its own).
        try:
            async with asyncio.timeout(self.options.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return _refuse(400, "client disconnected")
                    chunks += message.get("body", b"")
                    if len(chunks) > limit:
                        return _refuse(413, "body too large", {"Connection": "close"})
                    if not message.get("more_body", False):
                        return bytes(chunks)
        except TimeoutError:
            log.warning("webhook refused: %s (%d bytes in %g s)", BODY_TOO_SLOW, len(chunks), self.options.body_timeout)
            return _refuse(408, BODY_TOO_SLOW, {"Connection": "close"})

    async def _store(
        self,
        headers: _Headers,
        event: Event,
        body: bytes,
        signature: Literal["verified", "unsigned"],
        jobs: list[NewJob],
    ) -> Answer:
        delivery = NewDelivery(
            headers=tuple(hide_headers(headers.pairs)),
            body=body,
            body_sha256=hashlib.sha256(body).hexdigest(),
            delivery_id=event.delivery_id,
            dedupe_key=_dedupe_key(event, body),
            signature=signature,
            summary=_summary(event),
            notes="" if jobs or self.explain is None else self.explain(event),
        )
        try:
            stored = await self.store.ingest_async(
                delivery, jobs, dedupe_window=self.options.dedupe_window, executor=self.executor
            )
        except StoreError as exc:
            log.error("webhook not stored, answered 503: %s", exc, extra={"event_id": event.delivery_id})
            self._refused = (time.monotonic(), str(exc))
            return _refuse(503, "store unavailable", {"Retry-After": str(self.options.retry_after)})
        except Exception:  # a bug: still never a 2xx for what was not stored; the sender will try again
            log.exception("webhook not stored, answered 503", extra={"event_id": event.delivery_id})
            self._refused = (time.monotonic(), "an unexpected error; see the log")
            return _refuse(503, "store unavailable", {"Retry-After": str(self.options.retry_after)})
        self._refused = None
        return self._acknowledge(event, stored)

    def _acknowledge(self, event: Event, stored: Ingested) -> Answer:
        extra = {"event_id": event.delivery_id, "delivery": stored.delivery}
        if stored.status == "duplicate":
            self.metrics.duplicates.inc()
            log.info("duplicate of delivery d%s, not run again", stored.duplicate_of, extra=extra)
            return 200, {"duplicate": True, "id": stored.duplicate_of}, None
        if stored.status == "ignored":
            self.metrics.ignored.inc()
            log.info("stored d%s; no mapping wants %s", stored.delivery, _summary(event), extra=extra)
        else:
            self.metrics.coalesced.inc(len(stored.coalesced))
            if log.isEnabledFor(logging.INFO):
                jobs = ", ".join(map(str, stored.jobs))
                if stored.jobs or not stored.buckets:
                    log.info("stored d%s: %d job(s) %s", stored.delivery, len(stored.jobs), jobs, extra=extra)
                if stored.buckets:
                    buckets = ", ".join(map(str, stored.buckets))
                    log.info("stored d%s: item(s) in bucket(s) %s", stored.delivery, buckets, extra=extra)
            self.on_stored()
        answer: dict[str, Any] = {"status": stored.status, "id": stored.delivery, "jobs": list(stored.jobs)}
        if stored.buckets:  # a collecting mapping's item: committed in its bucket before this answer
            answer["buckets"] = list(stored.buckets)
        return 200, answer, None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "an unknown address"


def _from(scope: Scope, networks: Sequence[Network]) -> bool:
    client = scope.get("client")
    try:
        address = ipaddress.ip_address(client[0]) if client else None
    except ValueError:
        return False
    return address is not None and any(address in network for network in networks)


def create_app(
    store: Store,
    route: Router,
    options: ListenerOptions,
    *,
    metrics: Metrics,
    executor: Executor | None = None,
    on_stored: Callable[[], None] = lambda: None,
    readiness: Readiness | None = None,
    explain: Explain | None = None,
) -> Starlette:
    """The ASGI app: the webhook endpoint, /healthz, /readyz and /metrics."""
    webhooks = Webhooks(store, route, options, metrics, executor, on_stored, explain)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problem = webhooks.store_problem()
        if problem is None and readiness is not None:
            problem = await run_blocking(executor, readiness)
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_text(request: Request) -> Response:
        try:
            counts = await run_blocking(executor, store.counts)
        except StoreError as exc:
            log.warning("queue depth not shown in /metrics: %s", exc)
        else:
            for status, count in counts.items():
                metrics.queue.set(count, state=status)
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not found"}, status_code=404)

    app = Starlette(
        routes=[
            Route(options.path, webhooks),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_text),
        ],
        exception_handlers={404: not_found},
    )
    # Paths are exact: Starlette's trailing-slash redirect builds its Location from the Host header.
    app.router.redirect_slashes = False
    return app
