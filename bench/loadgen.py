"""Signed webhooks the way Scope AR sends them, posted closed-loop (N at a time) or open-loop (a fixed rate).

The client is plain HTTP/1.1 with keep-alive on asyncio streams, so the generator costs little CPU and is the
same for every server it is pointed at. Bodies are the subscription form (`{"data": {"id": ...}}`) with the
headers Scope AR documents for subscription webhooks: X-Scope-Topic, X-Scope-Webhook-Id (a UUID) and
X-Scope-Hmac-Sha256 = base64(HMAC-SHA256(secret, raw body)) from `mapper.service.signature.sign`.

Open loop: request i is due at start + i / rate whatever happened to the earlier ones, and its latency is
counted from that due time, so a stalled server cannot hide its stall by slowing the generator down
(no coordinated omission). A due request takes an idle connection or opens a new one.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mapper.service.signature import sign

SECRET = "bench-webhook-secret"
TOPIC = "scenario_session/completed"


def webhook(n: int, run: str) -> tuple[bytes, list[tuple[str, str]]]:
    """Webhook number n of a run: a distinct resource id each, so every one is its own effect."""
    node = f"{run}-{n:06d}"
    body = json.dumps(
        {"data": {"id": node, "url": f"https://cms.scopear.com/api/v3/graphql/object/{node}"}}, separators=(",", ":")
    ).encode()
    headers = [
        ("content-type", "application/json"),
        ("x-scope-topic", TOPIC),
        ("x-scope-topic-version", "1.1"),
        ("x-scope-api-version", "3"),
        ("x-scope-domain", "scopear.com"),
        ("x-scope-webhook-type", "node"),
        ("x-scope-webhook-id", str(uuid.uuid4())),
        ("x-scope-hmac-sha256", sign(body, SECRET)),
    ]
    return body, headers


def raw_request(url: str, body: bytes, headers: Sequence[tuple[str, str]]) -> bytes:
    parts = urlsplit(url)
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"host: {parts.netloc}", f"content-length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def prepared(url: str, count: int, run: str | None = None) -> list[bytes]:
    """`count` signed requests, ready to write (signing is not part of what is measured)."""
    run = run or uuid.uuid4().hex[:8]
    return [raw_request(url, *webhook(n, run)) for n in range(count)]


class Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read the status and the body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readline()).strip().split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    """What a run saw: every latency in seconds (request order), statuses, and the wall time."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0
    connections: int = 0

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    def count(self, status: int, started: float) -> None:
        self.latencies.append(time.perf_counter() - started)
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def closed_loop(url: str, requests: Sequence[bytes], concurrency: int, timeout: float = 60.0) -> Result:
    """Send every request with `concurrency` connections, each sending its next one when answered."""
    result = Result()
    pending = iter(requests)
    deadline = time.monotonic() + timeout

    async def client() -> None:
        connection = await Connection.open(url)
        result.connections += 1
        try:
            for request in pending:
                if time.monotonic() > deadline:
                    result.errors += 1
                    continue
                started = time.perf_counter()
                try:
                    status = await asyncio.wait_for(connection.send(request), 30)
                except (OSError, asyncio.IncompleteReadError, TimeoutError):
                    result.errors += 1
                    connection.close()
                    connection = await Connection.open(url)
                    continue
                result.count(status, started)
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def open_loop(
    url: str, requests: Sequence[bytes], rate: float, max_connections: int = 500, max_idle: float = 2.0
) -> Result:
    """Send request i at start + i / rate, on an idle connection or a new one (at most max_connections).

    A connection idle for more than `max_idle` seconds is closed rather than reused: servers close idle
    keep-alive connections (uvicorn after 5 s), and a request written into one that is closing is lost.
    """
    result = Result()
    idle: list[tuple[Connection, float]] = []
    opened = 0
    tasks: set[asyncio.Task[None]] = set()
    gate = asyncio.Semaphore(max_connections)

    async def connection() -> Connection:
        nonlocal opened
        while idle:
            found, since = idle.pop()
            if time.perf_counter() - since <= max_idle:
                return found
            found.close()
        opened += 1
        return await Connection.open(url)

    async def one(request: bytes, due: float) -> None:
        async with gate:
            try:
                using = await connection()
                status = await asyncio.wait_for(using.send(request), 30)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                result.errors += 1
                return
            result.count(status, due)  # latency from when it was due, not from when it went out
            idle.append((using, time.perf_counter()))

    started = time.perf_counter()
    for index, request in enumerate(requests):
        due = started + index / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(one(request, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - started
    result.connections = opened
    for using, _ in idle:
        using.close()
    return result
