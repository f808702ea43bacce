import asyncio
import json
import logging
import socket

import httpx
import pytest
from fakes import FakeServer, FakeSleep, Reply, auth, connection, make_certificates

from mapper.language import plan
from mapper.run.clients import (
    ConnectionClient,
    ConnectionUnusable,
    Exchange,
    RequestRejected,
    TransportFailure,
)
from mapper.run.connections import resolve

CANARY = "canary-s3cret-XYZ"


def send(conn, env, *calls, **options):
    """Run `ConnectionClient.send(**call)` for each call; return the responses (or errors), exchanges."""
    exchanges: list[Exchange] = []

    async def main():
        results = []
        async with ConnectionClient(resolve(conn, env), **options) as client:
            for call in calls:
                call = dict(call)
                method = call.pop("method", "GET")
                try:
                    results.append(await client.send(method, exchanges=exchanges, **call))
                except Exception as exc:
                    results.append(exc)
        return results

    return asyncio.run(main()), exchanges


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("/api/now", "table/incident", "/api/now/table/incident"),
        ("/api/now", "/table/incident", "/api/now/table/incident"),
        ("/api/now/", "/table/incident", "/api/now/table/incident"),
        ("/api/now/", "table/incident", "/api/now/table/incident"),
        ("", "/table/incident", "/table/incident"),
        ("/api/now", "/table/incident%2F1", "/api/now/table/incident%2F1"),
    ],
)
def test_path_is_joined_to_the_base_url_with_one_slash(base, path, expected):
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({"ok": True}))
        (response,), _ = send(connection(base_url=server.url + base), {}, {"path": path})
        assert response.status == 200
        assert server.requests[0].raw_path == expected


def test_connection_defaults_merge_under_step_headers_and_params():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}))
        conn = connection(
            base_url=server.url,
            headers={"X-Tenant": "acme", "sap-client": "100"},
            params={"$format": "json", "sysparm_limit": "1"},
        )
        send(
            conn,
            {},
            {"path": "/x", "headers": {"sap-client": "200"}, "params": {"sysparm_limit": "5"}},
            {"path": "/x?a=1", "headers": {"Accept": "text/csv"}},
        )
        first, second = server.requests
        assert first.header("x-tenant") == "acme"
        assert first.header("sap-client") == "200"
        assert first.header("accept") == "application/json"
        assert first.params == {"$format": ["json"], "sysparm_limit": ["5"]}
        assert second.header("accept") == "text/csv"
        assert second.params == {"a": ["1"], "$format": ["json"], "sysparm_limit": ["1"]}


def test_bodies_and_content_types():
    with FakeServer() as server:
        server.route("*", "*", Reply.json({}))
        send(
            connection(base_url=server.url),
            {},
            {"method": "POST", "path": "/j", "json": {"Text": "Grüße", "n": 1}},
            {"method": "POST", "path": "/n", "json": None},
            {"method": "POST", "path": "/f", "form": {"a": "1 2", "b": ["x", "y"]}},
            {"method": "PUT", "path": "/t", "content": "plain"},
            {"method": "PATCH", "path": "/c", "content": b"<x/>", "content_type": "application/xml"},
        )
        j, n, f, t, c = server.requests
        assert (j.header("content-type"), j.json()) == ("application/json", {"Text": "Grüße", "n": 1})
        assert (n.header("content-type"), n.body) == ("application/json", b"null")
        assert (f.header("content-type"), f.text) == ("application/x-www-form-urlencoded", "a=1+2&b=x&b=y")
        assert (t.header("content-type"), t.text) == ("text/plain; charset=utf-8", "plain")
        assert (c.header("content-type"), c.body) == ("application/xml", b"<x/>")


def test_idempotency_key_is_sent_when_the_connection_names_a_header():
    with FakeServer() as server:
        server.route("POST", "*", Reply.json({}))
        send(
            connection(base_url=server.url, idempotency_header="Idempotency-Key"),
            {},
            {"method": "POST", "path": "/a", "json": {}, "idempotency_key": "evt-1:step"},
        )
        send(
            connection(base_url=server.url),
            {},
            {"method": "POST", "path": "/b", "json": {}, "idempotency_key": "evt-1:step"},
        )
        assert server.requests[0].header("idempotency-key") == "evt-1:step"
        assert server.requests[1].header("idempotency-key") is None


def test_redirects_are_returned_not_followed():
    with FakeServer() as elsewhere, FakeServer() as server:
        elsewhere.route("*", "*", Reply.json({"stolen": True}))
        server.route("*", "*", Reply(302, b"", [("location", elsewhere.url + "/steal")]))
        (get, post), exchanges = send(
            connection(base_url=server.url), {}, {"path": "/a"}, {"method": "POST", "path": "/b", "json": {}}
        )
        assert (get.status, post.status) == (302, 302)
        assert get.headers["location"] == elsewhere.url + "/steal"
        assert elsewhere.requests == []
        assert len(exchanges) == 2


# ------------------------------------------------------------------------------------- rejected requests


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (
            {"path": "//evil.com/x"},
            "the path contains `//` (an empty segment, or an attempt to name another host)",
        ),
        (
            {"path": "https://evil.com/x"},
            "the path contains `//` (an empty segment, or an attempt to name another host)",
        ),
        (
            {"path": "@evil.com/x"},
            "the path contains `@`, which some parsers read as a user name before a host; percent-encode it (%40)",
        ),
        ({"path": "/a/../../admin"}, "the path contains a `.` or `..` segment"),
        ({"path": "/a/%2e%2e/admin"}, "the path contains a `.` or `..` segment"),
        (
            {"path": "/a\\evil.com"},
            "the path contains a space, control character, backslash or `#`; values in a path must be percent-encoded",
        ),
        (
            {"path": "/a\r\nHost: evil.com"},
            "the path contains a space, control character, backslash or `#`; values in a path must be percent-encoded",
        ),
        (
            {"headers": {"X-Note": "a\r\nX-Injected: 1"}},
            "header `X-Note` contains a line break or NUL; it was not sent",
        ),
        ({"headers": {"X-Note": "a\nb"}}, "header `X-Note` contains a line break or NUL; it was not sent"),
        ({"headers": {"X-Note": "a\x00b"}}, "header `X-Note` contains a line break or NUL; it was not sent"),
        ({"headers": {"X-Bad\r\nName": "v"}}, "`'X-Bad\\r\\nName'` is not a valid header name"),
        ({"url": "ftp://evil.com/x"}, "the URL must start with http:// or https://"),
        ({"url": "file:///etc/passwd"}, "the URL must start with http:// or https://"),
        (
            {"url": "http://user:pw@evil.com/"},
            "the URL must not contain a user name or password (use the connection's `auth`)",
        ),
        ({"path": "/a", "url": "http://h/"}, "a request takes a `path` or a `url`, not both"),
        ({"method": "GET /x HTTP/1.1\r\n"}, "`GET /X HTTP/1.1\r\n` is not an HTTP method"),
    ],
)
def test_injection_attempts_are_rejected_before_sending(call, reason):
    with FakeServer() as server:
        server.route("*", "*", Reply.json({}))
        (result,), exchanges = send(connection(base_url=server.url + "/api"), {}, call)
        assert isinstance(result, RequestRejected)
        assert result.reason == reason
        assert server.requests == []
        assert exchanges == []


def test_a_host_inside_the_path_stays_a_path():
    with FakeServer() as server:
        server.route("*", "*", Reply.json({}))
        (response,), _ = send(connection(base_url=server.url + "/api"), {}, {"path": "/evil.com%2Fx%40y"})
        assert response.status == 200
        assert server.requests[0].raw_path == "/api/evil.com%2Fx%40y"


def test_a_full_url_may_go_elsewhere_but_only_over_http():
    with FakeServer() as other, FakeServer() as server:
        other.route("*", "*", Reply.json({"here": True}))
        (response,), _ = send(connection(base_url=server.url), {}, {"url": other.url + "/next?page=2"})
        assert response.json() == {"here": True}
        assert other.requests[0].query == "page=2"


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("ftp://sap.example.com", "connection `target`: the base URL must start with http:// or https://"),
        (
            "https://u:p@sap.example.com",
            "connection `target`: the base URL must not contain a user name or password (use `auth`)",
        ),
        (
            "https://sap.example.com/x?a=1",
            "connection `target`: the base URL must not contain a query string or fragment (use `params`)",
        ),
    ],
)
def test_unusable_base_urls(base_url, message):
    with pytest.raises(ConnectionUnusable) as caught:
        ConnectionClient(resolve(connection(base_url=base_url), {}))
    assert str(caught.value) == message


def test_a_line_break_in_an_env_header_makes_the_connection_unusable():
    with pytest.raises(ConnectionUnusable) as caught:
        ConnectionClient(
            resolve(connection(base_url="https://h", headers={"X-Tenant": "{{ env.T }}"}), {"T": "a\r\nb: c"})
        )
    assert str(caught.value) == "connection `target`: header `X-Tenant` contains a line break or NUL; it was not sent"


def test_a_missing_env_value_makes_the_connection_unusable():
    with pytest.raises(ConnectionUnusable) as caught:
        ConnectionClient(resolve(connection(base_url="{{ env.SAP_URL }}"), {}))
    assert (
        str(caught.value) == "connection `target` (tests/fake-mapping.yaml:1:1): base_url: environment variable "
        "`SAP_URL` is not set"
    )


def test_a_missing_ca_file_makes_the_connection_unusable(tmp_path):
    tls = plan.Tls(ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConnectionUnusable) as caught:
        ConnectionClient(resolve(connection(base_url="https://h", tls=tls), {}))
    assert str(caught.value) == "connection `target`: cannot use its TLS files: No such file or directory"


# ------------------------------------------------------------------------------------ failures, retries


def test_a_timeout_is_a_retryable_failure_and_an_idempotent_request_is_tried_again():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}, delay=3))
        sleep = FakeSleep()
        (failure,), exchanges = send(connection(base_url=server.url, timeout=0.2), {}, {"path": "/slow"}, sleep=sleep)
        assert isinstance(failure, TransportFailure)
        assert failure.retryable
        assert failure.reason.endswith("did not answer within 0.2 s (tried 3 times)")
        assert len(server.requests) == 3
        assert sleep.calls == [0.2, 0.4]
        assert [exchange.attempt for exchange in exchanges] == [1, 2, 3]
        assert all(exchange.status is None and exchange.error for exchange in exchanges)


def test_a_post_that_timed_out_is_not_repeated_and_its_outcome_is_unknown():
    with FakeServer() as server:
        server.route("POST", "*", Reply.json({}, delay=3))
        sleep = FakeSleep()
        (failure,), _ = send(
            connection(base_url=server.url, timeout=0.2),
            {},
            {"method": "POST", "path": "/orders", "json": {"a": 1}},
            sleep=sleep,
        )
        assert isinstance(failure, TransportFailure)
        assert failure.retryable and failure.outcome_unknown
        assert failure.reason.endswith(
            "did not answer within 0.2 s; the request was sent, so it may have been "
            "applied (outcome unknown); it was not repeated because POST is not "
            "idempotent and no idempotency key was sent"
        )
        assert len(server.requests) == 1
        assert sleep.calls == []


def test_a_post_with_an_idempotency_key_is_repeated_with_the_same_key():
    with FakeServer() as server:
        server.route("POST", "*", Reply.json({}, delay=3), Reply.json({"created": 1}, status=201))
        (response,), _ = send(
            connection(base_url=server.url, timeout=0.2, idempotency_header="Idempotency-Key"),
            {},
            {"method": "POST", "path": "/orders", "json": {}, "idempotency_key": "k-1"},
            sleep=FakeSleep(),
        )
        assert (response.status, response.attempts) == (201, 2)
        assert [request.header("idempotency-key") for request in server.requests] == ["k-1", "k-1"]


def test_connection_refused_is_retried_quickly_then_retryable():
    sleep = FakeSleep()
    port = free_port()
    (failure,), exchanges = send(
        connection(base_url=f"http://127.0.0.1:{port}"),
        {},
        {"method": "POST", "path": "/x", "json": {}},
        sleep=sleep,
    )
    assert isinstance(failure, TransportFailure)
    assert failure.retryable and not failure.outcome_unknown
    assert failure.reason.startswith(f"could not connect to http://127.0.0.1:{port}")
    assert failure.reason.endswith("(tried 3 times)")
    assert len(sleep.calls) == 2
    assert len(exchanges) == 3


def test_quick_retries_follow_the_connection_policy():
    sleep = FakeSleep()
    retry = plan.RetryPolicy(quick_retries=0)
    (failure,), _ = send(
        connection(base_url=f"http://127.0.0.1:{free_port()}", retry=retry), {}, {"path": "/"}, sleep=sleep
    )
    assert isinstance(failure, TransportFailure) and failure.retryable
    assert sleep.calls == []


@pytest.mark.parametrize("status", [503, 429])
def test_a_short_retry_after_is_waited_for_and_retried(status):
    with FakeServer() as server:
        server.route("POST", "*", Reply.text("busy", status, [("retry-after", "1")]), Reply.json({}, 201))
        sleep = FakeSleep()
        (response,), exchanges = send(
            connection(base_url=server.url), {}, {"method": "POST", "path": "/x", "json": {}}, sleep=sleep
        )
        assert (response.status, response.attempts) == (201, 2)
        assert sleep.calls == [1.0]
        assert [exchange.status for exchange in exchanges] == [status, 201]


def test_a_long_or_missing_retry_after_is_left_to_the_caller():
    with FakeServer() as server:
        server.route("GET", "/long", Reply.text("busy", 503, [("retry-after", "120")]))
        server.route("GET", "/none", Reply.text("busy", 503))
        sleep = FakeSleep()
        (long, none), _ = send(connection(base_url=server.url), {}, {"path": "/long"}, {"path": "/none"}, sleep=sleep)
        assert (long.status, long.retry_after, long.attempts) == (503, 120.0, 1)
        assert (none.status, none.retry_after) == (503, None)
        assert sleep.calls == []


def test_a_status_that_stays_503_is_returned_after_the_quick_retries():
    with FakeServer() as server:
        server.route("GET", "*", Reply.text("busy", 503, [("retry-after", "0")]))
        sleep = FakeSleep()
        (response,), _ = send(connection(base_url=server.url), {}, {"path": "/"}, sleep=sleep)
        assert (response.status, response.attempts) == (503, 3)
        assert sleep.calls == [0.0, 0.0]


def test_an_answer_that_is_too_large_is_refused():
    with FakeServer() as server:
        server.route("GET", "*", Reply(200, b"x" * 5000))
        (failure,), _ = send(connection(base_url=server.url), {}, {"path": "/"}, max_answer_bytes=1000)
        assert isinstance(failure, TransportFailure) and not failure.retryable
        assert failure.reason.endswith("answered with more than 1000 bytes; the answer was refused")


# ----------------------------------------------------------------------------------- responses, records


def test_response_fields_and_json():
    with FakeServer() as server:
        server.route("GET", "/json", Reply.json({"d": {"id": "1"}}, headers=[("X-Thing", "a")]))
        server.route("GET", "/html", Reply(200, "<html>oops</html>", [("content-type", "text/html")]))
        server.route("GET", "/empty", Reply(204))
        (j, h, e), _ = send(
            connection(base_url=server.url), {}, {"path": "/json"}, {"path": "/html"}, {"path": "/empty"}
        )
        assert j.json() == {"d": {"id": "1"}} and j.headers["x-thing"] == "a"
        assert j.url == server.url + "/json"
        assert h.json() is None and h.text == "<html>oops</html>" and h.excerpt(10) == "<html>oop…"
        assert e.status == 204 and e.json() is None and e.content == b""


def test_cookies_are_not_kept_without_csrf():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}, headers=[("set-cookie", "JSESSIONID=abc; path=/")]))
        send(connection(base_url=server.url), {}, {"path": "/a"}, {"path": "/b"})
        assert [request.header("cookie") for request in server.requests] == [None, None]


def test_a_canary_secret_never_appears_in_any_exchange_or_message():
    """Every env value the connection reads is a secret: sent in headers, URL and bodies, never recorded."""

    def echo(request):
        return Reply.json(
            {"you_sent": request.text, "auth": request.header("authorization"), "query": request.query},
            headers=[("x-echo", request.header("x-password") or "")],
        )

    with FakeServer() as server:
        server.route("*", "*", echo)
        env = {"SNOW_URL": server.url, "SNOW_USER": "integration", "SNOW_PASSWORD": CANARY}
        conn = connection(
            "servicenow",
            base_url="{{ env.SNOW_URL }}/api/now",
            headers={"X-Password": "{{ env.SNOW_PASSWORD }}"},
            params={"sig": "{{ env.SNOW_PASSWORD }}", "copy": "{{ env.SNOW_PASSWORD }}"},
            auth=auth("basic", username="{{ env.SNOW_USER }}", password="{{ env.SNOW_PASSWORD }}"),
        )
        results, exchanges = send(
            conn,
            env,
            {
                "method": "POST",
                "path": "/table/incident",
                "json": {"note": CANARY, "nested": [f"x{CANARY}x"]},
            },
            {"method": "POST", "path": "/table/incident", "form": {"p": CANARY}},
            {"path": "/table/incident", "params": {"q": f"a {CANARY} b"}},
            {"path": "/table/" + CANARY, "headers": {"X-Other": f"Bearer {CANARY}"}},
        )
        assert all(result.status == 200 for result in results)
        assert CANARY in server.requests[0].text  # the secret did travel: the test is not vacuous
        assert server.requests[0].basic_auth() == ("integration", CANARY)
        unreachable = f"http://127.0.0.1:{free_port()}/" + "{{ env.SNOW_PASSWORD }}"
        (failure,), more = send(connection(base_url=unreachable), env, {"path": "/x"}, sleep=FakeSleep())
    recorded = json.dumps([exchange.as_dict() for exchange in exchanges + more])
    assert CANARY not in recorded
    assert "Y2FuYXJ5LXMzY3JldC1YWVo" not in recorded  # base64 of the canary, any alignment
    assert "canary-s3cret" not in str(failure)
    assert "***" in recorded
    assert all(CANARY not in result.url and CANARY not in result.excerpt(10_000) for result in results)


def test_our_logs_never_show_urls_with_secrets(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}))
        conn = connection(
            base_url=server.url,
            auth=auth("api_key", name="api_key", placement="query", value="{{ env.KEY }}"),
        )
        send(conn, {"KEY": CANARY}, {"path": "/x"})
        assert server.requests[0].params == {"api_key": [CANARY]}
    assert logging.getLogger("httpx").level >= logging.WARNING
    assert CANARY not in caplog.text
    assert "/x?api_key=***" in caplog.text


# ------------------------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


def test_tls_with_the_connection_ca_file(certificates):
    with FakeServer(tls=certificates) as server:
        server.route("GET", "*", Reply.json({"secure": True}))
        (response,), _ = send(connection(base_url=server.url, tls=plan.Tls(ca_file=certificates.ca)), {}, {"path": "/"})
        assert response.json() == {"secure": True}


def test_an_unknown_certificate_is_refused_and_not_retried(certificates):
    with FakeServer(tls=certificates) as server:
        server.route("GET", "*", Reply.json({}))
        sleep = FakeSleep()
        (failure,), _ = send(connection(base_url=server.url), {}, {"path": "/"}, sleep=sleep)
        assert isinstance(failure, TransportFailure)
        assert not failure.retryable
        assert failure.reason.startswith(f"the TLS certificate of {server.url} was not accepted: ")
        assert sleep.calls == []
        assert server.requests == []


def test_verification_can_be_turned_off(certificates):
    with FakeServer(tls=certificates) as server:
        server.route("GET", "*", Reply.json({}))
        (response,), _ = send(connection(base_url=server.url, tls=plan.Tls(verify=False)), {}, {"path": "/"})
        assert response.status == 200


def test_a_client_certificate_is_presented(certificates):
    with FakeServer(tls=certificates, require_client_cert=True) as server:
        server.route("GET", "*", Reply.json({}))
        with_cert = plan.Tls(
            ca_file=certificates.ca, client_cert=certificates.client_cert, client_key=certificates.client_key
        )
        (response,), _ = send(connection(base_url=server.url, tls=with_cert), {}, {"path": "/"})
        assert response.status == 200
        (failure,), _ = send(
            connection(base_url=server.url, tls=plan.Tls(ca_file=certificates.ca)),
            {},
            {"path": "/"},
            sleep=FakeSleep(),
        )
        assert isinstance(failure, TransportFailure)
        assert len(server.requests) == 1


def test_a_mock_transport_can_stand_in_for_the_network():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"mocked": True})

    (response,), exchanges = send(
        connection(base_url="https://sap.example.com/sap"),
        {},
        {"path": "/x"},
        transport=httpx.MockTransport(handler),
    )
    assert response.json() == {"mocked": True}
    assert seen == ["https://sap.example.com/sap/x"]
    assert exchanges[0].url == "https://sap.example.com/sap/x"


def test_query_parameters_are_encoded_the_way_odata_reads_them():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}))
        params = {"$filter": "Name eq 'a b&c'", "$select": "A,B", "q": "x=1+2/3"}
        send(connection(base_url=server.url), {}, {"path": "/Set?$top=1", "params": params})
        assert server.requests[0].query == "$top=1&$filter=Name%20eq%20'a%20b%26c'&$select=A,B&q=x%3D1%2B2/3"
        assert server.requests[0].params["$filter"] == ["Name eq 'a b&c'"]
