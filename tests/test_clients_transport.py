"""The aiohttp sender under the clients: what it tells about a failed request, and what goes on the wire."""

import asyncio
import gzip
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fakes import FakeServer, FakeSleep, Reply, connection
from test_clients_http import send
from yarl import URL

from mapper.run.clients import TransportFailure
from mapper.run.clients.transport import AiohttpSender, Outgoing


@contextmanager
def hanging_up() -> Iterator[tuple[str, list[bytes]]]:
    """A server that reads each request and closes the connection without answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                if data:
                    received.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        listener.close()
        thread.join(5)


def test_a_connection_closed_after_the_request_means_sent_with_an_unknown_outcome():
    # httpx-aiohttp maps this (ServerDisconnectedError) to ConnectTimeout, "not sent", and a POST would be repeated.
    with hanging_up() as (url, received):
        (failure,), exchanges = send(
            connection(base_url=url), {}, {"method": "POST", "path": "/orders", "json": {"a": 1}}, sleep=FakeSleep()
        )
    assert isinstance(failure, TransportFailure)
    assert failure.retryable and failure.outcome_unknown
    assert failure.reason.startswith(f"the connection to {url} broke before an answer came")
    assert "it was not repeated because POST is not idempotent" in failure.reason
    assert len(received) == 1 and len(exchanges) == 1


def test_the_url_goes_out_exactly_as_encoded():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}))
        (response,), _ = send(
            connection(base_url=server.url),
            {},
            {"path": "/Things('a%2Fb%20c')/x%25y", "params": {"$filter": "Name eq 'O''Brien'"}},
        )
        assert response.status == 200
        (request,) = server.requests
        assert request.raw_path == "/Things('a%2Fb%20c')/x%25y"
        assert request.query == "$filter=Name%20eq%20'O''Brien'"


def test_only_the_headers_wlmap_built_go_out():
    with FakeServer() as server:
        server.route("POST", "*", Reply.json({}))
        (response,), exchanges = send(
            connection(base_url=server.url), {}, {"method": "POST", "path": "/x", "json": {"a": 1}}
        )
        assert response.status == 200
        sent = {name for name, _ in server.requests[0].headers}
        assert sent == set(exchanges[0].request_headers)  # the trace shows every header that went out
        assert server.requests[0].header("user-agent").startswith("wlmap/")


def test_a_session_cookie_is_not_kept_by_the_transport():
    with FakeServer() as server:
        server.route("GET", "/login", Reply.json({}, headers=[("set-cookie", "session=abc; path=/")]))
        server.route("GET", "/next", Reply.json({}))

        async def main() -> None:
            sender = AiohttpSender()
            for path in ("/login", "/next"):
                request = Outgoing("GET", URL(f"{server.url}{path}"), {}, b"", 5.0, "request", None)
                assert (await sender.send(request, 1000)).status == 200
            await sender.aclose()

        asyncio.run(main())
        assert server.requests[1].header("cookie") is None


def test_a_gzip_answer_is_decoded_and_its_size_cap_applies_to_what_it_decodes_to():
    body = gzip.compress(b'{"ok": true, "pad": "' + b"x" * 5000 + b'"}')
    with FakeServer() as server:
        server.route("GET", "*", Reply(200, body, [("content-type", "application/json"), ("content-encoding", "gzip")]))
        (response,), _ = send(connection(base_url=server.url), {}, {"path": "/"})
        assert response.json()["ok"] is True and response.headers["content-encoding"] == "gzip"
        assert server.requests[0].header("accept-encoding") == "gzip, deflate"
        assert len(body) < 1000
        (failure,), _ = send(connection(base_url=server.url), {}, {"path": "/"}, max_answer_bytes=1000)
        assert isinstance(failure, TransportFailure)
        assert failure.reason.endswith("answered with more than 1000 bytes; the answer was refused")
