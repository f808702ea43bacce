"""Hostile and slow clients against the real service (`wlmap run --serve` in a subprocess, real sockets).

Idle connections, request heads and bodies sent a byte at a time, a Content-Length larger than the body, a
50 MB body, more connections than the cap: the slow ones are answered 408 or closed, and /healthz and signed
webhooks keep answering meanwhile. Also /readyz once the store cannot take webhooks any more.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_service_support import Service, Target, body_for, signed_headers


@pytest.fixture
def target() -> Iterator[Target]:
    with Target().running() as running:
        yield running


@contextlib.contextmanager
def running(tmp_path: Path, target: Target, *args: str) -> Iterator[Service]:
    service = Service(tmp_path, target, args=args)
    try:
        service.start()
        yield service
    finally:
        service.close()


OPENED: list[socket.socket] = []


@pytest.fixture(autouse=True)
def close_sockets() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def connect(service: Service) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    OPENED.append(sock)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it is still open after `within` s."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def closed_within(socks: list[socket.socket], within: float) -> list[bytes | None]:
    """For each socket, what the server sent before closing it, or None if it is still open after `within` s
    (one deadline for all: a thousand open sockets do not take a thousand timeouts)."""
    received: dict[socket.socket, bytes] = {sock: b"" for sock in socks}
    done: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as selector:  # epoll: no FD_SETSIZE limit
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while len(done) < len(socks) and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[sock] += chunk
                else:
                    done[sock] = received[sock]
                    selector.unregister(sock)
    return [done.get(sock) for sock in socks]


def healthy_and_taking_webhooks(service: Service, n: int) -> float:
    """A fresh connection's /healthz and a signed webhook, both answered; the slower one's seconds."""
    started = time.monotonic()
    with httpx.Client(timeout=5) as client:  # a new connection, as a load balancer's probe makes
        assert client.get(f"{service.url}/healthz").status_code == 200
        body = body_for(f"R{n}", n)
        answer = client.post(f"{service.url}/webhooks", content=body, headers=signed_headers(body, f"c-{n}"))
        assert answer.status_code == 200, answer.text
    return time.monotonic() - started


HEAD = b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.slow
def test_a_thousand_idle_connections_for_20_s_do_not_stop_health_checks_or_webhooks(
    tmp_path: Path, target: Target
) -> None:
    """Issue 17: 1,000 idle connections were all held for 20 s. With the defaults (head deadline 10 s) they are
    closed, half-sent heads with a 408, while fresh connections are answered all along."""
    with running(tmp_path, target) as service:
        idle = [connect(service) for _ in range(500)]
        partial = [connect(service) for _ in range(500)]
        for sock in partial:
            sock.sendall(HEAD)  # the head never ends
        opened = time.monotonic()
        slowest, n = 0.0, 0
        while time.monotonic() - opened < 20:
            n += 1
            slowest = max(slowest, healthy_and_taking_webhooks(service, n))
            time.sleep(0.5)
        assert slowest < 2.0, f"an answer took {slowest:.2f} s"
        assert n >= 20
        answers = closed_within(idle + partial, within=2.0)
        assert answers.count(None) == 0, f"{answers.count(None)} connections still open after 20 s"
        assert all(answer == b"" for answer in answers[:500])  # nothing sent, nothing answered
        assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers[500:] if answer is not None)
        service.drain()
        assert len(target.effects) == n
        assert service.terminate() == 0
        assert "Traceback" not in service.tail(500)


def test_slow_heads_and_bodies_are_answered_408_and_closed(tmp_path: Path, target: Target) -> None:
    """A head sent a byte a second, a body sent a byte a second, a Content-Length larger than the body."""
    with running(tmp_path, target, "--header-timeout", "2", "--body-timeout", "2") as service:
        slow_head, slow_body, short_body = connect(service), connect(service), connect(service)
        body = body_for("S1")
        slow_body.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(body))
        short_body.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body)
        started = time.monotonic()
        for byte in (HEAD * 3)[:8]:  # a byte a second: the head is not in within 2 s
            for sock, data in ((slow_head, bytes([byte])), (slow_body, body[:1])):
                with contextlib.suppress(OSError):
                    sock.sendall(data)
            healthy_and_taking_webhooks(service, int(time.monotonic() * 1000))
            time.sleep(1.0)
        for sock in (slow_head, slow_body, short_body):
            answer = closed_by_server(sock, within=3.0)
            assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 15
        short_answer = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert short_answer == {"error": "body not received in time"}
        assert service.query("SELECT COUNT(*) FROM deliveries WHERE body LIKE '%S1%'")[0][0] == 0


def test_past_the_connection_cap_the_longest_idle_connection_makes_room(tmp_path: Path, target: Target) -> None:
    with running(tmp_path, target, "--max-connections", "50") as service:
        first = [connect(service) for _ in range(50)]
        time.sleep(0.2)
        later = [connect(service) for _ in range(100)]
        healthy_and_taking_webhooks(service, 1)  # room is made for a real client, at once
        closed = [closed_by_server(sock, within=0.2) is not None for sock in first + later]
        assert all(closed[:50]), "the oldest idle connections are closed first"
        assert sum(not c for c in closed) <= 50


def test_a_50_mb_body_is_cut_off_and_the_service_keeps_answering(tmp_path: Path, target: Target) -> None:
    with running(tmp_path, target) as service:
        sock = connect(service)
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        sent = 0
        with contextlib.suppress(OSError):  # the server closes its end once the limit is passed
            while sent < 50 * 1024 * 1024:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        answer = closed_by_server(sock, within=5)
        assert answer is not None and (answer == b"" or answer.startswith(b"HTTP/1.1 413")), answer[:100]
        assert sent < 50 * 1024 * 1024  # cut off well before the end
        healthy_and_taking_webhooks(service, 1)
        rss_kb = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{service.proc.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS")
            )
        )  # type: ignore[union-attr]
        assert rss_kb < 200 * 1024, f"the service holds {rss_kb // 1024} MB"


def test_readyz_says_not_ready_while_the_store_is_full(tmp_path: Path, target: Target) -> None:
    """Issue 17: /readyz answered `ready` while the store could not write. The full disk is simulated with
    --store-max-mb (SQLite's max_page_count): the probe's small write still fits, webhooks do not."""
    target.behave = lambda hit: (200, 0.0, [])
    with running(tmp_path, target, "--store-max-mb", "0.3") as service:
        assert httpx.get(f"{service.url}/readyz").json() == {"status": "ready"}
        statuses = []
        for n in range(30):
            body = json.dumps({"data": {"id": f"R{n}"}, "pad": "x" * 30_000}).encode()
            answer = httpx.post(f"{service.url}/webhooks", content=body, headers=signed_headers(body, f"f-{n}"))
            statuses.append(answer.status_code)
            if answer.status_code == 503:
                break
        assert statuses[-1] == 503 and 200 in statuses
        ready = httpx.get(f"{service.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"].startswith("store not writable: the last webhook could not be stored (")
        assert httpx.get(f"{service.url}/healthz").status_code == 200  # alive: no reason to restart it
