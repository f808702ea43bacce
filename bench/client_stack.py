"""CPU per request of wlmap's HTTP client (ConnectionClient on aiohttp) vs aiohttp's own ClientSession.

    python bench/client_stack.py [--requests 4000] [--concurrency 20] [--rounds 5]

Both send the same JSON PATCH with basic auth to bench/fakes.py (a separate process answering at once), so the
figure is what our client adds to aiohttp per request: URL checks, credentials, masking, the exchange record.
Prints the CPU time of this process per request (best round of each, rounds interleaved) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from mapper.run.clients import ConnectionClient, Exchange
from mapper.run.clients.settings import AuthSettings, ConnectionSettings, RetrySettings

ROOT = Path(__file__).resolve().parents[1]
BODY = {"work_notes": "WorkLink call ended.\nDuration: 12.6 min", "u_worklink_session_id": "S-1", "minutes": "12.6"}


def start_fakes() -> tuple[subprocess.Popen[str], str]:
    fakes = subprocess.Popen(
        [sys.executable, str(ROOT / "bench/fakes.py"), "--latency", "0"], stdout=subprocess.PIPE, text=True
    )
    assert fakes.stdout is not None
    line = fakes.stdout.readline().split()
    return fakes, line[1]


async def burst(send: Callable[[int], Awaitable[int]], requests: int, concurrency: int) -> float:
    """CPU seconds of this process per request, `concurrency` requests in flight."""
    numbers = iter(range(requests))

    async def worker() -> None:
        for number in numbers:
            assert await send(number) == 200

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / requests


async def measure(base: str, requests: int, concurrency: int, rounds: int) -> tuple[float, float]:
    settings = ConnectionSettings(
        name="bench",
        url=f"{base}/api",
        is_endpoint=False,
        timeout=10.0,
        retry=RetrySettings(frozenset({503}), True, 1),
        auth=AuthSettings("basic", {"username": "bench", "password": "bench-password"}),
    )
    ours = ConnectionClient(settings)
    session = aiohttp.ClientSession()
    auth = "Basic " + base64.b64encode(b"bench:bench-password").decode()

    async def by_wlmap(number: int) -> int:
        exchanges: list[Exchange] = []
        answer = await ours.send(
            "PATCH", path=f"/things/{number}", params={"fields": "sys_id"}, json=BODY, exchanges=exchanges
        )
        return answer.status

    async def by_aiohttp(number: int) -> int:
        async with session.patch(
            f"{base}/api/things/{number}",
            params={"fields": "sys_id"},
            data=json.dumps(BODY).encode(),
            headers={"Authorization": auth, "Content-Type": "application/json", "Accept": "application/json"},
        ) as answer:
            await answer.read()
            return answer.status

    best_ours = best_aiohttp = float("inf")
    await burst(by_wlmap, 200, concurrency)  # warm up: connections, caches
    await burst(by_aiohttp, 200, concurrency)
    for _ in range(rounds):
        best_ours = min(best_ours, await burst(by_wlmap, requests, concurrency))
        best_aiohttp = min(best_aiohttp, await burst(by_aiohttp, requests, concurrency))
    await ours.aclose()
    await session.close()
    return best_ours, best_aiohttp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    fakes, base = start_fakes()
    try:
        ours, bare = asyncio.run(measure(base, args.requests, args.concurrency, args.rounds))
    finally:
        fakes.terminate()
        fakes.wait()
    print(f"client stack: CPU per request, wlmap's ConnectionClient {ours * 1e6:.0f} µs vs aiohttp's ClientSession")
    print(f"  {bare * 1e6:.0f} µs: {ours / bare:.2f}x ({args.requests} PATCH requests, concurrency {args.concurrency})")


if __name__ == "__main__":
    main()
