"""An httpx transport that answers from saved responses, per step: dry runs and `wlmap test` send nothing.

Each request says which step sends it and what kind of exchange it is (the clients put both in the request's
extensions: `exchange.STEP_EXTENSION`, `exchange.KIND_EXTENSION`); the transport answers a step from its
stubs, the GraphQL query from the saved GraphQL response, and auxiliary requests (OAuth2 token, SAP CSRF
fetch) with stand-in tokens — or with a test case's own answers (`auth:`), to test a token endpoint that refuses
or fails — so the whole request flow, auth included, runs exactly as it would live.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from mapper.run.clients.exchange import KIND_EXTENSION, STEP_EXTENSION

DRY_RUN_TOKEN = "dry-run-token"


@dataclass(frozen=True)
class StubResponse:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # dict/list → JSON; str → text; None → empty

    def to_httpx(self, request: httpx.Request) -> httpx.Response:
        headers = dict(self.headers)
        if isinstance(self.body, dict | list):
            content = json.dumps(self.body).encode()
            headers.setdefault("content-type", "application/json")
        elif self.body is None:
            content = b""
        else:
            content = str(self.body).encode()
        return httpx.Response(self.status, headers=headers, content=content, request=request)


AUXILIARY = frozenset({"csrf-fetch", "oauth2-token"})


@dataclass
class Sent:
    step: str | None  # the step, "query", or an auxiliary request: "csrf-fetch", "oauth2-token"
    request: httpx.Request


class StubTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        graphql: Any = None,
        steps: Mapping[str, list[StubResponse]] | None = None,
        default: StubResponse | None = None,
        auth: Mapping[str, list[StubResponse]] | None = None,
    ) -> None:
        self.graphql = graphql
        self.steps = {name: list(responses) for name, responses in (steps or {}).items()}
        self.auth = {kind: list(responses) for kind, responses in (auth or {}).items()}  # a case's `auth:` answers
        self.default = default or StubResponse(200, {}, {})
        self.sent: list[Sent] = []
        self.unstubbed: list[str] = []  # steps answered with the default response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        step: str | None = request.extensions.get(STEP_EXTENSION)
        kind = request.extensions.get(KIND_EXTENSION)
        if kind in AUXILIARY and self.auth.get(kind):
            self.sent.append(Sent(kind, request))
            return _next(self.auth[kind]).to_httpx(request)
        if kind == "csrf-fetch":
            # The token header is the one that says `Fetch` (its name is configurable).
            fetch = next((name for name, value in request.headers.items() if value.lower() == "fetch"), "x-csrf-token")
            self.sent.append(Sent("csrf-fetch", request))
            return httpx.Response(
                200, headers={fetch: DRY_RUN_TOKEN, "set-cookie": "SAP_SESSIONID_DRY=1; Path=/"}, request=request
            )
        if kind == "oauth2-token":
            self.sent.append(Sent("oauth2-token", request))
            return httpx.Response(
                200, json={"access_token": DRY_RUN_TOKEN, "token_type": "Bearer", "expires_in": 3600}, request=request
            )
        self.sent.append(Sent(step, request))
        if step == "query":
            if self.graphql is None:
                return httpx.Response(
                    200, json={"data": None, "errors": [{"message": "no GraphQL response was given"}]}, request=request
                )
            return StubResponse(200, {}, self.graphql).to_httpx(request)
        queue = self.steps.get(step or "")
        if not queue:
            if step is not None and step not in self.unstubbed:
                self.unstubbed.append(step)
            return self.default.to_httpx(request)
        return _next(queue).to_httpx(request)


def _next(queue: list[StubResponse]) -> StubResponse:
    """Each request takes the next answer; the last one answers every request after it."""
    return queue.pop(0) if len(queue) > 1 else queue[0]
