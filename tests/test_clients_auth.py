import asyncio
import json

import pytest
from fakes import FakeClock, FakeOAuth2, FakeSap, FakeServer, Reply, auth, connection

from mapper.language import plan
from mapper.run.clients import AuthFailure, ConnectionClient, ConnectionUnusable, Exchange, TokenCache
from mapper.run.connections import resolve

SAP_SERVICE = "/sap/opu/odata/sap/API_MAINTNOTIFICATION"


def run(*clients_and_calls, token_cache=None):
    """Build a client per connection and send its calls in order; returns results and all exchanges."""
    exchanges: list[Exchange] = []

    async def main():
        results = []
        for conn, env, calls in clients_and_calls:
            async with ConnectionClient(resolve(conn, env), token_cache=token_cache) as client:
                for call in calls:
                    call = dict(call)
                    method = call.pop("method", "GET")
                    try:
                        results.append(await client.send(method, exchanges=exchanges, **call))
                    except Exception as exc:
                        results.append(exc)
        return results

    return asyncio.run(main()), exchanges


def oauth2_connection(server, oauth, **auth_options):
    options = {"scopes": ("read", "write"), **auth_options}
    return connection(
        base_url=server.url + "/api",
        auth=auth(
            "oauth2",
            token_url="{{ env.TOKEN_URL }}",
            client_id="{{ env.CLIENT_ID }}",
            client_secret="{{ env.CLIENT_SECRET }}",
            **options,
        ),
    )


def oauth2_env(oauth):
    return {"TOKEN_URL": oauth.url, "CLIENT_ID": oauth.client_id, "CLIENT_SECRET": oauth.client_secret}


# ----------------------------------------------------------------------------------- static credentials


def test_basic_auth_header_reaches_the_server():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}))
        conn = connection(base_url=server.url, auth=auth("basic", username="{{ env.U }}", password="{{ env.P }}"))
        (response,), exchanges = run((conn, {"U": "maximo", "P": "pässword:1"}, [{"path": "/x"}]))
        assert response.status == 200
        assert server.requests[0].basic_auth() == ("maximo", "pässword:1")
        assert exchanges[0].request_headers["authorization"] == "***"


def test_bearer_token():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}))
        conn = connection(base_url=server.url, auth=auth("bearer", token="{{ env.TOKEN }}"))
        run((conn, {"TOKEN": "static-bearer-1"}, [{"path": "/x"}]))
        assert server.requests[0].header("authorization") == "Bearer static-bearer-1"


def test_api_key_in_a_header():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}))
        conn = connection(base_url=server.url, auth=auth("api_key", name="apikey", value="{{ env.KEY }}"))
        _, exchanges = run((conn, {"KEY": "maximo-key-123"}, [{"path": "/maximo/api/os/mxapiwo"}]))
        assert server.requests[0].header("apikey") == "maximo-key-123"
        assert exchanges[0].request_headers["apikey"] == "***"


def test_api_key_in_the_query_replaces_a_parameter_of_the_same_name():
    with FakeServer() as server:
        server.route("GET", "*", Reply.json({}))
        conn = connection(
            base_url=server.url, auth=auth("api_key", name="token", placement="query", value="{{ env.KEY }}")
        )
        _, exchanges = run((conn, {"KEY": "query-key-123"}, [{"path": "/x", "params": {"token": "forged", "a": "1"}}]))
        assert server.requests[0].params == {"a": ["1"], "token": ["query-key-123"]}
        assert exchanges[0].url == "***?a=1&token=***" or exchanges[0].url.endswith("/x?a=1&token=***")


def test_missing_credentials_make_the_connection_unusable():
    with pytest.raises(ConnectionUnusable) as caught:
        ConnectionClient(
            resolve(
                connection(base_url="https://h", auth=auth("basic", username="u", password="{{ env.P }}")), {"P": ""}
            )
        )
    assert str(caught.value) == "connection `target`: basic auth needs `password` (empty or missing)"


# -------------------------------------------------------------------------------------------- OAuth2


def test_oauth2_token_is_fetched_once_for_several_requests():
    with FakeServer() as server:
        oauth = FakeOAuth2(server)
        oauth.protect("GET", "/api/*", Reply.json({"ok": True}))
        conn = oauth2_connection(server, oauth, audience="https://api.example.com")
        results, exchanges = run((conn, oauth2_env(oauth), [{"path": "/a"}, {"path": "/b"}, {"path": "/c"}]))
        assert [result.status for result in results] == [200, 200, 200]
        assert oauth.fetches == 1
        assert oauth.forms[0] == {
            "grant_type": "client_credentials",
            "scope": "read write",
            "audience": "https://api.example.com",
        }
        token_request = server.requests_to("/oauth/token")[0]
        assert token_request.basic_auth() == (oauth.client_id, oauth.client_secret)
        assert [exchange.kind for exchange in exchanges] == ["oauth2-token", "request", "request", "request"]
        recorded = json.dumps([exchange.as_dict() for exchange in exchanges])
        assert "tok-1" not in recorded and oauth.client_secret not in recorded


def test_oauth2_client_credentials_in_the_body():
    with FakeServer() as server:
        oauth = FakeOAuth2(server, client_secret="s3cret with spaces&=")
        oauth.protect("GET", "/api/*", Reply.json({}))
        conn = oauth2_connection(server, oauth, client_auth="body", scopes=())
        (response,), exchanges = run((conn, oauth2_env(oauth), [{"path": "/a"}]))
        assert response.status == 200
        assert oauth.forms[0] == {
            "grant_type": "client_credentials",
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
        }
        assert server.requests_to("/oauth/token")[0].header("authorization") is None
        assert "s3cret" not in json.dumps([exchange.as_dict() for exchange in exchanges])


def test_oauth2_token_is_refreshed_near_expiry():
    clock = FakeClock()
    cache = TokenCache(clock=clock)
    with FakeServer() as server:
        oauth = FakeOAuth2(server, expires_in=3600)
        oauth.protect("GET", "/api/*", Reply.json({}))
        conn, env = oauth2_connection(server, oauth), oauth2_env(oauth)

        async def main():
            async with ConnectionClient(resolve(conn, env), token_cache=cache) as client:
                exchanges: list[Exchange] = []
                await client.send("GET", path="/a", exchanges=exchanges)
                clock.advance(3500)  # 100 s left: still good
                await client.send("GET", path="/a", exchanges=exchanges)
                assert oauth.fetches == 1
                clock.advance(50)  # 50 s left: within the 60 s margin
                await client.send("GET", path="/a", exchanges=exchanges)
                assert oauth.fetches == 2
                await client.send("GET", path="/a", exchanges=exchanges)
                assert oauth.fetches == 2

        asyncio.run(main())
        assert [request.header("authorization") for request in server.requests_to("/api/*")] == [
            "Bearer tok-1",
            "Bearer tok-1",
            "Bearer tok-2",
            "Bearer tok-2",
        ]


def test_oauth2_token_is_shared_across_clients_and_fetched_once_when_requests_race():
    cache = TokenCache()
    with FakeServer() as server:
        oauth = FakeOAuth2(server, delay=0.2)
        oauth.protect("GET", "/api/*", Reply.json({}))
        conn, env = oauth2_connection(server, oauth), oauth2_env(oauth)

        async def main():
            async with (
                ConnectionClient(resolve(conn, env), token_cache=cache) as one,
                ConnectionClient(resolve(conn, env), token_cache=cache) as two,
            ):
                exchanges: list[Exchange] = []
                responses = await asyncio.gather(
                    *(client.send("GET", path=f"/{n}", exchanges=exchanges) for n in range(5) for client in (one, two))
                )
                return responses, exchanges

        responses, exchanges = asyncio.run(main())
        assert [response.status for response in responses] == [200] * 10
        assert oauth.fetches == 1
        assert sum(exchange.kind == "oauth2-token" for exchange in exchanges) == 1


def test_a_401_invalidates_the_token_and_the_request_is_sent_once_more():
    with FakeServer() as server:
        oauth = FakeOAuth2(server)
        oauth.protect("POST", "/api/*", Reply.json({"created": True}, status=201))
        conn, env = oauth2_connection(server, oauth), oauth2_env(oauth)
        cache = TokenCache()
        run((conn, env, [{"method": "POST", "path": "/a", "json": {}}]), token_cache=cache)
        oauth.revoke_all()
        (response,), exchanges = run((conn, env, [{"method": "POST", "path": "/a", "json": {}}]), token_cache=cache)
        assert response.status == 201
        assert response.notes == (
            "the target answered 401 to the OAuth2 token; fetched a new token and sent the request once more",
        )
        assert oauth.fetches == 2
        assert [(exchange.kind, exchange.status) for exchange in exchanges] == [
            ("request", 401),
            ("oauth2-token", 200),
            ("request", 201),
        ]


def test_a_second_401_is_returned_not_looped_on():
    with FakeServer() as server:
        oauth = FakeOAuth2(server)
        server.route("GET", "/api/*", Reply.json({"error": "nope"}, status=401))
        (response,), _ = run((oauth2_connection(server, oauth), oauth2_env(oauth), [{"path": "/a"}]))
        assert response.status == 401
        assert oauth.fetches == 2
        assert len(server.requests_to("/api/*")) == 2


def test_a_refused_client_is_a_permanent_auth_failure():
    with FakeServer() as server:
        oauth = FakeOAuth2(server)
        env = {**oauth2_env(oauth), "CLIENT_SECRET": "wrong-secret-value"}
        (failure,), _ = run((oauth2_connection(server, oauth), env, [{"path": "/a"}]))
        assert isinstance(failure, AuthFailure)
        assert not failure.retryable
        # the token URL comes from env and is an address, not a secret: shown by the variable's name
        assert failure.reason == (
            "the OAuth2 token endpoint ‹TOKEN_URL› answered 401: invalid_client (bad client credentials)"
        )
        assert server.requests_to("/api/*") == []


def test_a_token_endpoint_that_is_down_is_a_retryable_auth_failure():
    with FakeServer() as server:
        oauth = FakeOAuth2(server)
        server.route("POST", "/oauth/token", Reply.text("down", 503, [("retry-after", "30")]))
        (failure,), _ = run((oauth2_connection(server, oauth), oauth2_env(oauth), [{"path": "/a"}]))
        assert isinstance(failure, AuthFailure)
        assert (failure.retryable, failure.retry_after) == (True, 30.0)


# ---------------------------------------------------------------------------------------------- SAP CSRF


def sap_connection(server, **options):
    return connection(
        "sap",
        base_url="{{ env.SAP_URL }}" + SAP_SERVICE,
        csrf=plan.Csrf(),
        **options,
        auth=auth("basic", username="{{ env.SAP_USER }}", password="{{ env.SAP_PASSWORD }}"),
    )


def sap_env(server, password="sap-password-1"):
    return {"SAP_URL": server.url, "SAP_USER": "WLMAP", "SAP_PASSWORD": password}


def test_csrf_token_and_session_cookie_are_fetched_once_and_sent_on_writes():
    with FakeServer() as server:
        sap = FakeSap(server, user="WLMAP", password="sap-password-1")
        results, exchanges = run(
            (
                sap_connection(server),
                sap_env(server),
                [
                    {"path": "/MaintenanceNotification('1')"},
                    {"method": "POST", "path": "/MaintenanceNotification", "json": {"NotificationText": "a"}},
                    {
                        "method": "PATCH",
                        "path": "/MaintenanceNotification('1')",
                        "json": {"NotificationText": "b"},
                    },
                    {"method": "MERGE", "path": "/MaintenanceNotification('1')", "json": {}},
                    {"method": "DELETE", "path": "/MaintenanceNotification('1')"},
                ],
            )
        )
        assert [result.status for result in results] == [200, 201, 200, 200, 200]
        assert sap.fetches == 1
        assert len(sap.writes) == 4
        fetch = server.requests[1]
        assert (fetch.method, fetch.path, fetch.header("x-csrf-token")) == ("GET", SAP_SERVICE + "/", "Fetch")
        assert fetch.basic_auth() == ("WLMAP", "sap-password-1")
        for write in sap.writes:
            assert write.header("x-csrf-token") == sap.token
            assert write.cookies()[FakeSap.COOKIE] == sap.session
            assert write.cookies()["sap-usercontext"] == "sap-client=100"
        assert server.requests[0].header("x-csrf-token") is None  # a read needs no token
        assert [exchange.kind for exchange in exchanges] == [
            "request",
            "csrf-fetch",
            "request",
            "request",
            "request",
            "request",
        ]
        recorded = json.dumps([exchange.as_dict() for exchange in exchanges])
        assert sap.token not in recorded and sap.session not in recorded
        assert '"x-csrf-token": "Fetch"' in recorded


def test_an_expired_csrf_token_is_fetched_again_once():
    with FakeServer() as server:
        sap = FakeSap(server)
        conn, env = sap_connection(server), sap_env(server)

        async def main():
            exchanges: list[Exchange] = []
            async with ConnectionClient(resolve(conn, env)) as client:
                first = await client.send("POST", path="/MaintenanceNotification", json={}, exchanges=exchanges)
                sap.expire_token_once()
                second = await client.send("POST", path="/MaintenanceNotification", json={}, exchanges=exchanges)
            return first, second, exchanges

        first, second, exchanges = asyncio.run(main())
        assert (first.status, second.status) == (201, 201)
        assert second.notes == (
            "SAP rejected the CSRF token (403); fetched a new token and sent the request once more",
        )
        assert sap.fetches == 2
        assert [(exchange.kind, exchange.status) for exchange in exchanges] == [
            ("csrf-fetch", 200),
            ("request", 201),
            ("request", 403),
            ("csrf-fetch", 200),
            ("request", 201),
        ]


def test_a_csrf_token_that_is_never_accepted_is_not_fetched_forever():
    with FakeServer() as server:
        sap = FakeSap(server, reject_all=True)
        (response,), exchanges = run(
            (
                sap_connection(server),
                sap_env(server),
                [{"method": "POST", "path": "/MaintenanceNotification", "json": {}}],
            )
        )
        assert response.status == 403
        assert response.notes == (
            "SAP rejected the CSRF token (403); fetched a new token and sent the request once "
            "more, and SAP rejected the new token too",
        )
        assert (sap.fetches, sap.rejected) == (2, 2)
        assert len(exchanges) == 4


def test_a_refused_csrf_fetch_is_an_auth_failure_in_plain_words():
    with FakeServer() as server:
        FakeSap(server, user="WLMAP", password="right-password")
        (failure,), _ = run(
            (
                sap_connection(server),
                sap_env(server, password="wrong-password"),
                [{"method": "POST", "path": "/MaintenanceNotification", "json": {}}],
            )
        )
        assert isinstance(failure, AuthFailure)
        assert not failure.retryable
        assert failure.reason == f"SAP did not hand out a CSRF token: GET {SAP_SERVICE}/ answered 401"


def test_a_csrf_fetch_answer_without_a_token_is_an_auth_failure():
    with FakeServer() as server:
        server.route("GET", SAP_SERVICE + "/", Reply.json({}))
        (failure,), _ = run(
            (
                sap_connection(server),
                sap_env(server),
                [{"method": "POST", "path": "/MaintenanceNotification", "json": {}}],
            )
        )
        assert isinstance(failure, AuthFailure)
        assert failure.reason == (
            f"SAP did not hand out a CSRF token: GET {SAP_SERVICE}/ answered 200 without a `x-csrf-token` header"
        )
        assert server.requests_to(SAP_SERVICE + "/Maint*") == []
