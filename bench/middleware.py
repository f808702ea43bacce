"""The baselines wlmap's listener is measured against: what a developer writes by hand with starlette.

    python bench/middleware.py --port 0 --mode verify                     # verify the signature, answer 200
    python bench/middleware.py --port 0 --mode forward --client httpx     # ... then GraphQL POST + target PATCH

`verify` is the bare endpoint: read the body, check the HMAC in constant time, answer. `forward` is the
hand-written middleware Scope AR's reference app is (receive, verify, answer 200, background job): a task per
webhook, at most `--concurrency` of them working at once (a semaphore), each POSTing the GraphQL query and
PATCHing the target. Nothing is stored: a crash or a failed request loses the event. `--client` picks the HTTP
stack: httpx (its own httpcore pool), httpx-aiohttp (the httpx API on an aiohttp transport) or aiohttp.
Served by uvicorn with the settings `mapper.service.server` uses (h11, no lifespan, no access log, backlog 2048,
TCP_NODELAY on every connection), on uvloop as wlmap is.
Prints `ready http://127.0.0.1:PORT` when listening; at exit, `stats {...}` (failures, background tasks).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvicorn
import uvloop
from fakes import SNOW_AUTH, TOKEN
from loadgen import SECRET
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

QUERY = "query ($id: ID!) { node(id: $id) { ... on ScenarioSession { id state duration endedAt externalData } } }"


def verified(body: bytes, given: str | None) -> bool:
    mac = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return given is not None and hmac.compare_digest(mac, given)


class Forwarder:
    """The background job: GraphQL query, then the PATCH; at most `concurrency` at once."""

    def __init__(self, upstream: str, client: str, concurrency: int) -> None:
        self.upstream, self.kind = upstream, client
        self.gate = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.failures = 0
        self.session: Any = None

    def start(self, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self.run(payload))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _open(self) -> Any:
        if self.kind == "aiohttp":
            import aiohttp

            return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        import httpx

        transport = None
        if self.kind == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport()
        return httpx.AsyncClient(transport=transport, timeout=30)

    async def run(self, payload: dict[str, Any]) -> None:
        async with self.gate:
            if self.session is None:
                self.session = self._open()
            node = payload["data"]["id"]
            graphql = {"query": QUERY, "variables": {"id": node}}
            try:
                if self.kind == "aiohttp":
                    async with self.session.post(
                        f"{self.upstream}/api/v3/graphql",
                        json=graphql,
                        headers={"Authorization": f"Token token={TOKEN}"},
                    ) as answer:
                        data = (await answer.json())["data"]["node"]
                    async with self.session.patch(
                        f"{self.upstream}/api/things/{data['id']}",
                        json={"state": data["state"], "minutes": round(data["duration"] / 60, 1)},
                        headers={"Authorization": SNOW_AUTH},
                    ) as answer:
                        answer.raise_for_status()
                else:
                    answer = await self.session.post(
                        f"{self.upstream}/api/v3/graphql",
                        json=graphql,
                        headers={"Authorization": f"Token token={TOKEN}"},
                    )
                    data = answer.json()["data"]["node"]
                    answer = await self.session.patch(
                        f"{self.upstream}/api/things/{data['id']}",
                        json={"state": data["state"], "minutes": round(data["duration"] / 60, 1)},
                        headers={"Authorization": SNOW_AUTH},
                    )
                    answer.raise_for_status()
            except Exception as exc:  # the event is lost: nothing was stored
                self.failures += 1
                if self.failures <= 5:
                    print(f"lost an event: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def create_app(mode: str, forwarder: Forwarder | None) -> Starlette:
    async def webhooks(request: Request) -> Response:
        body = await request.body()
        if not verified(body, request.headers.get("x-scope-hmac-sha256")):
            return JSONResponse({"error": "signature does not match"}, status_code=401)
        if forwarder is not None:
            forwarder.start(json.loads(body))
        return JSONResponse({"status": "accepted"})

    return Starlette(routes=[Route("/webhooks", webhooks, methods=["POST"])])


async def main(port: int, mode: str, client: str, upstream: str, concurrency: int) -> None:
    forwarder = Forwarder(upstream, client, concurrency) if mode == "forward" else None
    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    # uvicorn binds the port itself, as `uvicorn app:app` does (asyncio then sets TCP_NODELAY).
    config = uvicorn.Config(
        create_app(mode, forwarder),
        host="127.0.0.1",
        port=port,
        backlog=2048,
        log_config=None,
        access_log=False,
        lifespan="off",
        http="h11",
        server_header=False,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    print(f"ready http://127.0.0.1:{port}", flush=True)
    await serving
    if forwarder is not None:
        print("stats " + json.dumps({"failures": forwarder.failures, "unfinished": len(forwarder.tasks)}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=("verify", "forward"), default="verify")
    parser.add_argument("--client", choices=("httpx", "httpx-aiohttp", "aiohttp"), default="httpx")
    parser.add_argument("--upstream", default="", help="base URL of bench/fakes.py")
    parser.add_argument("--concurrency", type=int, default=50, help="background jobs working at once")
    args = parser.parse_args()
    # uvloop, as wlmap's service runs on (mapper/service/server.py): the ratios compare the same event loop.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(args.port, args.mode, args.client, args.upstream, args.concurrency))
