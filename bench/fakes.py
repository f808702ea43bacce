"""Fake Scope AR GraphQL endpoint and fake target system with a fixed latency, for the service load benchmarks.

    python bench/fakes.py --port 0 --latency 0.02      # prints `ready http://127.0.0.1:PORT` when listening

One process, one port, plain HTTP/1.1 with keep-alive written on asyncio streams: the fakes must cost as little
CPU as possible, because on a 2-core machine every cycle they take is one the system under test does not get.

    POST /api/v3/graphql       after `latency`: {"data": {"node": {... the id asked for ...}}}
    PATCH /api/things/{id}     after `latency`: 200; the id is counted as an effect (a repeat is counted apart)
    GET  /stats                {"graphql": n, "requests": n, "effects": distinct ids, "repeats": n,
                                "first": t, "last": t}   (time.time() of the first and last effect)
    POST /reset                forget everything
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Final

TOKEN: Final = "bench-scope-token"
SNOW_AUTH: Final = "Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ="  # bench:bench-password


class Fakes:
    """The state both fakes share, and the answers they give."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.reset()

    def reset(self) -> None:
        self.graphql = 0
        self.requests = 0
        self.effects: set[str] = set()
        self.repeats = 0
        self.first = 0.0
        self.last = 0.0

    async def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        self.requests += 1
        if method == "POST" and path.startswith("/api/v3/graphql"):
            if headers.get("authorization") != f"Token token={TOKEN}":
                return 401, b'{"errors": [{"message": "Unauthorized"}]}'
            self.graphql += 1
            node = json.loads(body)["variables"]["id"]
            await asyncio.sleep(self.latency)
            return 200, json.dumps(
                {
                    "data": {
                        "node": {
                            "__typename": "ScenarioSession",
                            "id": node,
                            "state": "completed",
                            "duration": 754,
                            "endedAt": "2024-05-01T10:12:30Z",
                            "externalData": {"ticket": f"T-{node}"},
                        }
                    }
                }
            ).encode()
        if method == "PATCH" and path.startswith("/api/things/"):
            await asyncio.sleep(self.latency)
            thing = path.rsplit("/", 1)[1]
            if thing in self.effects:
                self.repeats += 1
            else:
                self.effects.add(thing)
            now = time.time()
            self.first = self.first or now
            self.last = now
            return 200, b'{"ok": true}'
        if method == "GET" and path == "/stats":
            self.requests -= 1
            return 200, json.dumps(
                {
                    "graphql": self.graphql,
                    "requests": self.requests,
                    "effects": len(self.effects),
                    "repeats": self.repeats,
                    "first": self.first,
                    "last": self.last,
                }
            ).encode()
        if method == "POST" and path == "/reset":
            self.reset()
            return 200, b"{}"
        return 404, b'{"error": "not found"}'

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                status, content = await self.answer(method, target.partition("?")[0], headers, body)
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (status, len(content), content)
                )
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def main(port: int, latency: float) -> None:
    fakes = Fakes(latency)
    server = await asyncio.start_server(fakes.connection, "127.0.0.1", port, backlog=2048)
    print(f"ready http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds each GraphQL query and PATCH take")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.port, args.latency))
