import asyncio
import json
import socket

from fakes import FakeScope, FakeServer, FakeSleep, Reply, connection

from mapper.run.clients import Exchange, GraphQLClient, GraphQLFailure
from mapper.run.connections import resolve

QUERY = """
query Session($id: ID!) {
  node(id: $id) { ... on ScenarioSession { id state percentOfStepsViewed } }
}
"""
MUTATION = "mutation Touch($id: ID!) { touch(id: $id) { id } }"
SESSION = {"node": {"id": "U2NlbmFyaW9TZXNzaW9uLTEyMw==", "state": "completed", "percentOfStepsViewed": 100}}
TOKEN = "scope-api-token-777"


def scope_connection(server, **options):
    return connection(
        "scope",
        url="{{ env.SCOPE_URL }}/api/v3/graphql",
        headers={"Authorization": "Token token={{ env.SCOPE_TOKEN }}"},
        **options,
    )


def execute(server, *, document=QUERY, variables=None, operation="Session", env=None, **options):
    exchanges: list[Exchange] = []
    sleep = FakeSleep()

    async def main():
        async with GraphQLClient(
            resolve(scope_connection(server, **options), env or {"SCOPE_URL": server.url, "SCOPE_TOKEN": TOKEN}),
            sleep=sleep,
        ) as client:
            try:
                return await client.execute(
                    document, variables or {"id": SESSION["node"]["id"]}, operation, exchanges=exchanges
                )
            except GraphQLFailure as failure:
                return failure

    return asyncio.run(main()), exchanges, sleep


def test_data_is_returned_and_the_exchange_is_recorded_masked():
    with FakeServer() as server:
        scope = FakeScope(server, token=TOKEN)
        scope.answer(FakeScope.data(SESSION))
        result, exchanges, _ = execute(server, variables={"id": SESSION["node"]["id"], "secret": TOKEN})
        assert result == SESSION
        assert scope.payloads == [
            {
                "query": QUERY,
                "variables": {"id": SESSION["node"]["id"], "secret": TOKEN},
                "operationName": "Session",
            }
        ]
        (exchange,) = exchanges
        assert (exchange.kind, exchange.method, exchange.status) == ("graphql", "POST", 200)
        assert exchange.request_headers["authorization"] == "***"
        assert json.loads(exchange.request_body)["variables"] == {
            "id": SESSION["node"]["id"],
            "secret": "***",
        }
        assert "percentOfStepsViewed" in exchange.request_body
        assert TOKEN not in json.dumps(exchange.as_dict())


def test_not_authorized_with_http_200_is_a_permanent_failure():
    with FakeServer() as server:
        FakeScope(server, token=TOKEN).answer(FakeScope.errors("Not authorized to read object", data={"node": None}))
        failure, _, _ = execute(server)
        assert isinstance(failure, GraphQLFailure)
        assert failure.message == "the GraphQL query failed: Not authorized to read object (at node)"
        assert (failure.retryable, failure.denied, failure.status) == (False, True, 200)


def test_other_query_errors_are_permanent_too():
    with FakeServer() as server:
        FakeScope(server, token=TOKEN).answer(FakeScope.errors("Field 'nope' doesn't exist", "second problem"))
        failure, _, sleep = execute(server)
        assert isinstance(failure, GraphQLFailure)
        assert failure.message == (
            "the GraphQL query failed: Field 'nope' doesn't exist (at node); second problem (at node)"
        )
        assert (failure.retryable, failure.denied) == (False, False)
        assert sleep.calls == []


def test_a_wrong_token_is_a_permanent_denied_failure():
    with FakeServer() as server:
        FakeScope(server, token=TOKEN)
        failure, _, _ = execute(server, env={"SCOPE_URL": server.url, "SCOPE_TOKEN": "not-the-token"})
        assert isinstance(failure, GraphQLFailure)
        assert failure.message == "the GraphQL endpoint answered 401: Unauthorized"
        assert (failure.retryable, failure.denied, failure.status) == (False, True, 401)


def test_a_500_is_retryable():
    with FakeServer() as server:
        FakeScope(server, token=TOKEN).answer(FakeScope.status(500, "Internal Server Error"))
        failure, _, _ = execute(server)
        assert isinstance(failure, GraphQLFailure)
        assert failure.message == "the GraphQL endpoint answered 500: Internal Server Error"
        assert (failure.retryable, failure.status) == (True, 500)


def test_a_500_with_graphql_errors_is_still_retryable():
    with FakeServer() as server:
        FakeScope(server, token=TOKEN).answer(FakeScope.errors("upstream timeout", status=502))
        failure, _, _ = execute(server)
        assert isinstance(failure, GraphQLFailure)
        assert failure.message == "the GraphQL endpoint answered 502: upstream timeout (at node)"
        assert failure.retryable


def test_a_503_with_a_short_retry_after_is_retried_at_once():
    with FakeServer() as server:
        FakeScope(server, token=TOKEN).answer(Reply.text("busy", 503, [("retry-after", "1")]), FakeScope.data(SESSION))
        result, exchanges, sleep = execute(server)
        assert result == SESSION
        assert sleep.calls == [1.0]
        assert [exchange.status for exchange in exchanges] == [503, 200]


def test_a_slow_answer_to_a_query_is_retried_then_retryable():
    with FakeServer() as server:
        scope = FakeScope(server, token=TOKEN)
        scope.answer(FakeScope.slow(3, SESSION))
        failure, _, sleep = execute(server, timeout=0.2)
        assert isinstance(failure, GraphQLFailure)
        assert failure.retryable
        assert failure.message.startswith("the GraphQL query got no answer: ")
        assert failure.message.endswith("did not answer within 0.2 s (tried 3 times)")
        assert len(scope.payloads) == 3 and len(sleep.calls) == 2


def test_a_slow_answer_to_a_mutation_is_not_repeated():
    with FakeServer() as server:
        scope = FakeScope(server, token=TOKEN)
        scope.answer(FakeScope.slow(3, {"touch": {"id": "1"}}))
        failure, _, _ = execute(server, document=MUTATION, operation=None, timeout=0.2)
        assert isinstance(failure, GraphQLFailure)
        assert failure.retryable and failure.outcome_unknown
        assert len(scope.payloads) == 1


def test_no_server_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exchanges: list[Exchange] = []

    async def main():
        conn = connection("scope", url=f"http://127.0.0.1:{port}/api/v3/graphql")
        async with GraphQLClient(resolve(conn, {}), sleep=FakeSleep()) as client:
            try:
                await client.execute(QUERY, {"id": "1"}, "Session", exchanges=exchanges)
            except GraphQLFailure as failure:
                return failure

    failure = asyncio.run(main())
    assert isinstance(failure, GraphQLFailure)
    assert failure.retryable
    assert failure.message.startswith(f"the GraphQL query got no answer: could not connect to http://127.0.0.1:{port}")
    assert len(exchanges) == 3  # the query was tried again: it is safe to repeat


def test_an_answer_that_is_not_json_is_a_failure_with_an_excerpt():
    with FakeServer() as server:
        FakeScope(server, token=TOKEN).answer(FakeScope.text("<html><body>Please sign in</body></html>"))
        failure, _, _ = execute(server)
        assert isinstance(failure, GraphQLFailure)
        assert failure.message == (
            "the GraphQL endpoint answered 200 with something that is not JSON: "
            "<html><body>Please sign in</body></html>"
        )
        assert not failure.retryable


def test_an_answer_without_data_is_a_failure():
    with FakeServer() as server:
        FakeScope(server, token=TOKEN).answer(Reply.json({"extensions": {}}))
        failure, _, _ = execute(server)
        assert isinstance(failure, GraphQLFailure)
        assert failure.message == 'the GraphQL answer has no `data`: {"extensions": {}}'
        assert not failure.retryable


def test_a_redirect_is_not_followed():
    with FakeServer() as elsewhere, FakeServer() as server:
        server.route("POST", "*", Reply(302, b"", [("location", elsewhere.url + "/login")]))
        failure, _, _ = execute(server)
        assert isinstance(failure, GraphQLFailure)
        assert (
            failure.message == f"the GraphQL endpoint answered 302: a redirect to {elsewhere.url}/login, not followed"
        )
        assert elsewhere.requests == []


def test_the_endpoint_url_may_carry_a_permalink_query():
    with FakeServer() as server:
        scope = FakeScope(server, token=TOKEN)
        scope.answer(FakeScope.data(SESSION))

        async def main():
            conn = connection(
                "scope",
                url=server.url + "/api/v3/graphql?permalink=acme",
                headers={"Authorization": f"Token token={TOKEN}"},
                params={"x": "1"},
            )
            async with GraphQLClient(resolve(conn, {})) as client:
                return await client.execute(QUERY, {"id": "1"}, exchanges=[])

        assert asyncio.run(main()) == SESSION
        assert server.requests[0].query == "permalink=acme&x=1"
