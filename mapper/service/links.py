"""GET /links/<mapping>[/qr.svg|/qr.png]: the deep link for one service request, for systems that show a URL.

A ServiceNow UI action or formatter, an SAP Fiori tile or a Maximo page asks with the link parameters in the
query string (`?asset=P-101&incident=INC0010001`) and gets the link as JSON, or its QR code as an image.
Off unless `--links`; it never runs a mapping, never redirects, and answers every refusal as
`{"error": "<reason>"}`. Order of checks: method (405), rate (429), token (401), mapping (404), parameters
(400, the message `wlmap link` prints).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mapper.language.plan import LINK_TARGETS, Link, Plan
from mapper.links import LinkError, build
from mapper.links.build import Built, SigningKeyMissing

log = logging.getLogger("wlmap.links")

Plans = Callable[[], Mapping[str, Plan]]  # the mappings in force, by name (they may be reloaded)

MAX_QUERY = 4096  # bytes of query string; a link holds at most 2048 characters
CACHE = "private, max-age=300"  # the same parameters give the same link until the mapping or key changes
# What every answer carries: not to be sniffed as another type, not cached by shared caches across tokens.
_COMMON = {"X-Content-Type-Options": "nosniff", "Vary": "Authorization", "Referrer-Policy": "no-referrer"}
_SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'"  # an SVG opened on its own runs nothing
_HTTP_PARAMETERS = ("access_token", "deferred")


@dataclass(frozen=True)
class LinkOptions:
    token: str  # LINKS_TOKEN_ENV: `Authorization: Bearer <token>`, or `?access_token=` (RFC 6750 §2.1, §2.3)
    keys: tuple[bytes, ...] = ()  # signing keys for mappings with `link: {signed: true}`, the newest last
    rate: float = 10.0  # requests per second, all callers together; as many again in a burst


class RateLimit:
    """A token bucket: `rate` requests a second on average, up to `rate` (at least one) at once."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.clock = rate, clock
        self.capacity = max(1.0, rate)
        self.tokens, self.last = self.capacity, clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


def _refuse(status: int, reason: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": reason}, status_code=status, headers={**_COMMON, **(headers or {})})


class Links:
    """The ASGI endpoint of one route (JSON, SVG or PNG); every method reaches it, so a wrong one gets a JSON 405."""

    def __init__(self, plans: Plans, options: LinkOptions, limit: RateLimit, kind: str) -> None:
        self.plans, self.options, self.limit, self.kind = plans, options, limit, kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = self.answer(request)
        await response(scope, receive, send)

    def answer(self, request: Request) -> Response:
        if request.method != "GET":
            return _refuse(405, "method not allowed", {"Allow": "GET"})
        if not self.limit.take():
            return _refuse(429, "too many requests", {"Retry-After": "1"})
        refused = self._authorize(request)
        if refused is not None:
            return refused
        name = request.path_params.get("mapping", "")
        plan = self.plans().get(name)
        if plan is None or plan.link is None:
            return _refuse(404, "no mapping of that name declares a link")
        try:
            values, target_id, deferred = _read_query(request, plan.link)
            built = build(plan.link, values, target_id, self.options.keys)
            return self._respond(request, plan, built, deferred)
        except SigningKeyMissing as exc:
            log.error("link for %s not signed: %s", plan.name, exc)
            return _refuse(503, str(exc))
        except LinkError as exc:
            return _refuse(400, str(exc))

    def _authorize(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" else request.query_params.get("access_token")
        if not given:
            return _refuse(401, "a token is required", {"WWW-Authenticate": 'Bearer realm="wlmap links"'})
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.options.token.encode()):
            return _refuse(401, "the token does not match", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return None

    def _respond(self, request: Request, plan: Plan, built: Built, deferred: bool) -> Response:
        if self.kind == "json":
            return _cached(request, JSONResponse({"mapping": plan.name, **built.as_json()}, headers=dict(_COMMON)))
        from mapper.links import qr  # segno: only when an image is asked for

        kind: qr.Kind = "svg" if self.kind == "svg" else "png"
        image = qr.image(built.deferred_link if deferred else built.link, kind)
        headers = {**_COMMON, **({"Content-Security-Policy": _SVG_POLICY} if kind == "svg" else {})}
        return _cached(request, Response(image, media_type=qr.CONTENT_TYPES[kind], headers=headers))


def _read_query(request: Request, link: Link) -> tuple[dict[str, str], str | None, bool]:
    """The link parameters, the target id and `deferred` from the query string; LinkError when it is not right."""
    raw = request.scope.get("query_string", b"")
    if len(raw) > MAX_QUERY:
        raise LinkError([f"the query string is longer than {MAX_QUERY} bytes"])
    pairs = request.query_params.multi_items()
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise LinkError([f"`{name}` is given twice"])
        values[name] = value
    for other in LINK_TARGETS:
        if other != link.target and other in values:
            raise LinkError([f"this link opens {link.target}=ID, not {other}"])
    target_id = values.pop(link.target, None)
    deferred = values.get("deferred", "false").lower()  # `?deferred` alone is a yes
    if deferred not in ("true", "false", "1", "0", ""):
        raise LinkError(["`deferred` must be true or false"])
    for name in _HTTP_PARAMETERS:
        values.pop(name, None)
    return values, target_id, deferred in ("true", "1", "")


def _cached(request: Request, response: Response) -> Response:
    """ETag and Cache-Control; a request that already has this version gets 304 and no body."""
    tag = '"' + hashlib.sha256(bytes(response.body)).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": CACHE}
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={**_COMMON, **headers})
    response.headers.update(headers)
    return response


async def _not_found(request: Request) -> Response:
    return _refuse(404, "not found")


_EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def routes(plans: Plans, options: LinkOptions, path: str) -> list[Route]:
    """The three routes under `path` (/links), sharing one rate limit, and a JSON 404 for anything else there.

    The last one also keeps starlette from answering `/links/x/` with a redirect to `/links/x` built from the
    request's Host header: nothing under /links ever redirects.
    """
    limit = RateLimit(options.rate)
    return [
        Route(f"{path}/{{mapping}}", Links(plans, options, limit, "json")),
        Route(f"{path}/{{mapping}}/qr.svg", Links(plans, options, limit, "svg")),
        Route(f"{path}/{{mapping}}/qr.png", Links(plans, options, limit, "png")),
        Route(f"{path}/{{anything:path}}", _not_found, methods=_EVERY_METHOD),
    ]
