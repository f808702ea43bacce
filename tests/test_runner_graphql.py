"""GraphQL steps end to end over real HTTP: a fake GraphQL target on 127.0.0.1, answering data, errors, 5xx, or
nothing at all; the Scope AR query and GraphQL steps go through the same gql client."""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
from typing import Any

from fakes import FakeScope, FakeServer, Recorded, Reply

from mapper.events import normalise
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.run.clients.graphql import GraphQLClient
from mapper.run.outcome import RunResult
from mapper.run.runner import Runner

SESSION = "U2NlbmFyaW9TZXNzaW9uLTE="
EVENT = {"data": {"id": SESSION, "url": "https://cms.scopear.com/x"}}
HEADERS = {"x-scope-topic": "scenario_session/completed", "x-scope-webhook-id": "d-1"}
TOKEN = "assets-canary-token-5150"

HEAD = """
version: 1
name: graphql-steps
trigger: {topics: [scenario_session/completed]}
connections:
  assets:
    url: "{{ env.ASSETS_URL }}"
    auth: {bearer: {token: "{{ env.ASSETS_TOKEN }}"}}
    idempotency_header: Idempotency-Key
    retry: {quick_retries: 1}
extract:
  tag: "'PMP-0417'"
steps:
"""

FIND = """
- name: find-asset
  connection: assets
  graphql: |
    query Find($tag: String!) { assetByTag(tag: $tag) { id name } }
  variables: {tag: "{{ tag }}"}
  capture: {id: body.data.assetByTag.id}
  outcomes:
    - when: "body.data && !(body.data.assetByTag)"
      outcome: skip
      reason: "no asset {{ tag }}"
"""

RECORD = """
- name: record
  connection: assets
  graphql: |
    mutation Record($input: InspectionInput!) { recordInspection(input: $input) { inspection { id } } }
  variables:
    input: {assetId: "{{ steps.find_asset.id }}", minutes: "{{ 12.5 }}", passed: "{{ true }}"}
  capture: {inspection: body.data.recordInspection.inspection.id}
  on_error: {ASSET_RETIRED: skip, DUPLICATE_REFERENCE: success, BUSY: retry}
"""


def plan_of(steps: str, head: str = HEAD) -> Plan:
    plan, problems = loader.load_text(head + textwrap.indent(textwrap.dedent(steps), "  "), "tests/graphql.yaml")
    assert plan is not None, "\n".join(f"{p.location}: {p.message}" for p in problems)
    return plan


def run(plan: Plan, env: dict[str, str]) -> RunResult:
    return asyncio.run(run_with(Runner(env), plan))


async def run_with(runner: Runner, plan: Plan, close: bool = True) -> RunResult:
    try:
        return await runner.run(plan, normalise(json.dumps(EVENT).encode(), HEADERS), idempotency_key="job-1")
    finally:
        if close:
            await runner.aclose()


class FakeAssets:
    """A GraphQL endpoint with bearer auth: answers by operation name from a script, records every payload."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.answers: dict[str, list[Reply]] = {}
        self.payloads: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        server.route("POST", "/graphql", self._handle)

    @property
    def env(self) -> dict[str, str]:
        return {"ASSETS_URL": self.server.url + "/graphql", "ASSETS_TOKEN": TOKEN}

    def answer(self, operation: str, *replies: Reply) -> None:
        self.answers[operation] = list(replies)

    def _handle(self, request: Recorded) -> Reply:
        if request.header("authorization") != f"Bearer {TOKEN}":
            return Reply.json({"errors": [{"message": "Unauthorized"}]}, 401)
        payload = request.json()
        self.payloads.append(payload)
        self.requests.append(request)
        operation = "Record" if payload["query"].lstrip().startswith("mutation") else "Find"
        script = self.answers.get(operation) or [Reply.json({"errors": [{"message": "nothing scripted"}]})]
        return script.pop(0) if len(script) > 1 else script[0]


def data(value: Any, status: int = 200) -> Reply:
    return Reply.json({"data": value}, status)


def errors(*pairs: tuple[str, str | None], status: int = 200, data_value: Any = None) -> Reply:
    found = [{"message": m, **({"extensions": {"code": c}} if c else {})} for m, c in pairs]
    return Reply.json({"data": data_value, "errors": found}, status)


ASSET = {"assetByTag": {"id": "QXNzZXQ6NDE3", "name": "Pump"}}
RECORDED = {"recordInspection": {"inspection": {"id": "SW5zcGVjdGlvbjo5"}}}


def test_a_query_and_a_mutation_with_data() -> None:
    with FakeServer() as server:
        assets = FakeAssets(server)
        assets.answer("Find", data(ASSET))
        assets.answer("Record", data(RECORDED))
        result = run(plan_of(FIND + RECORD), assets.env)
        assert result.status == "done", result.reason
        find, record = assets.payloads
        assert find == {"query": "query Find($tag: String!) { assetByTag(tag: $tag) { id name } }\n",
                        "variables": {"tag": "PMP-0417"}}  # fmt: skip
        assert record["variables"] == {"input": {"assetId": "QXNzZXQ6NDE3", "minutes": 12.5, "passed": True}}
        stages = {s.get("name"): s for s in result.trace["stages"] if s.get("stage") == "step"}
        assert stages["record"]["captured"] == {"inspection": "SW5zcGVjdGlvbjo5"}
        # a mutation carries the idempotency key; a query, safe to repeat, does not
        first, second = assets.requests
        assert first.header("idempotency-key") is None and len(second.header("idempotency-key") or "") == 32
        assert TOKEN not in result.trace_json


def test_the_idempotency_key_of_a_mutation_is_the_same_on_every_retry() -> None:
    with FakeServer() as server:
        assets = FakeAssets(server)
        assets.answer("Find", data(ASSET))
        assets.answer("Record", Reply.text("down", 502))
        plan = plan_of(FIND + RECORD)
        assert run(plan, assets.env).status == "retry"
        assert run(plan, assets.env).status == "retry"
        keys = [r.header("idempotency-key") for r in assets.requests if r.json()["query"].startswith("mutation")]
        assert len(keys) == 2 and keys[0] == keys[1] and keys[0]


def test_errors_in_a_200_park_the_event_dead_with_the_messages() -> None:
    with FakeServer() as server:
        assets = FakeAssets(server)
        assets.answer("Find", data(ASSET))
        assets.answer("Record", errors(("Variable $input got an invalid value", "BAD_USER_INPUT"), ("second", None)))
        result = run(plan_of(FIND + RECORD), assets.env)
        assert result.status == "dead"
        assert result.reason == (
            "step `record` (tests/graphql.yaml:26): assets answered 200 with GraphQL errors: "
            "Variable $input got an invalid value [BAD_USER_INPUT]; second"
        )
        assert len(assets.payloads) == 2  # not repeated: a query error does not fix itself


def test_a_500_with_errors_is_retried() -> None:
    with FakeServer() as server:
        assets = FakeAssets(server)
        assets.answer("Find", errors(("database unavailable", "INTERNAL_SERVER_ERROR"), status=500))
        result = run(plan_of(FIND + RECORD), assets.env)
        assert result.status == "retry"
        assert result.reason == "step `find-asset` (tests/graphql.yaml:15): assets answered 500: database unavailable"


def test_a_network_error_is_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(plan_of(FIND), {"ASSETS_URL": f"http://127.0.0.1:{port}/graphql", "ASSETS_TOKEN": TOKEN})
    assert result.status == "retry"
    assert result.reason.startswith(
        f"step `find-asset` (tests/graphql.yaml:15): could not connect to http://127.0.0.1:{port}"
    )
    exchanges = next(s for s in result.trace["stages"] if s.get("name") == "find-asset")["exchanges"]
    assert len(exchanges) == 2  # a query is safe to repeat: one quick retry


def test_a_slow_mutation_without_an_idempotency_header_is_not_repeated() -> None:
    head = HEAD.replace("    idempotency_header: Idempotency-Key\n", "    timeout: 300ms\n")
    with FakeServer() as server:
        assets = FakeAssets(server)
        assets.answer("Find", data(ASSET))
        assets.answer("Record", Reply.json({"data": RECORDED}, delay=3))
        result = run(plan_of(FIND + RECORD, head), assets.env)
        assert result.status == "retry"
        assert "outcome unknown" in result.reason
        assert sum(p["query"].startswith("mutation") for p in assets.payloads) == 1


def test_error_codes_decide_as_on_error_says() -> None:
    cases = [
        (errors(("retired", "ASSET_RETIRED")), "skipped"),
        (errors(("again", "DUPLICATE_REFERENCE")), "done"),
        (errors(("busy", "BUSY")), "retry"),
        (errors(("slow down", "THROTTLED")), "retry"),  # a code that asks for later, retried by default
        (errors(("retired", "ASSET_RETIRED"), ("broken", "BAD_USER_INPUT")), "dead"),  # the worst of them
        (errors(("busy", "BUSY"), ("again", "DUPLICATE_REFERENCE")), "retry"),
    ]
    with FakeServer() as server:
        assets = FakeAssets(server)
        for reply, expected in cases:
            assets.answer("Find", data(ASSET))
            assets.answer("Record", reply)
            result = run(plan_of(FIND + RECORD), assets.env)
            assert result.status == expected, (reply.body, result.reason)


def test_an_outcome_rule_reads_the_graphql_answer() -> None:
    with FakeServer() as server:
        assets = FakeAssets(server)
        assets.answer("Find", data({"assetByTag": None}))
        result = run(plan_of(FIND + RECORD), assets.env)
        assert (result.status, result.reason) == (
            "skipped",
            "step `find-asset` (tests/graphql.yaml:15): no asset PMP-0417",
        )
        assets.answer("Find", errors(("down", None), status=503))  # no data: the rule does not hold, the 503 retries
        assert run(plan_of(FIND + RECORD), assets.env).status == "retry"


def test_the_scope_query_and_a_graphql_step_share_one_gql_client() -> None:
    head = """
version: 1
name: one-client
trigger: {topics: [scenario_session/completed]}
connections:
  scope:
    url: "{{ env.SCOPE_URL }}"
    headers: {Authorization: "Token token={{ env.SCOPE_TOKEN }}"}
query:
  connection: scope
  graphql: "query Session($id: ID!) { node(id: $id) { id } }"
  variables: {id: "{{ event.resource_id }}"}
extract:
  session: result.node.id
steps:
"""
    step = """
- name: touch
  connection: scope
  graphql: "mutation Touch($id: ID!) { touch(id: $id) { id } }"
  variables: {id: "{{ session }}"}
"""
    with FakeServer() as server:
        scope = FakeScope(server, token="scope-token")
        scope.answer(FakeScope.data({"node": {"id": SESSION}}), FakeScope.data({"touch": {"id": SESSION}}))
        runner = Runner({"SCOPE_URL": scope.url, "SCOPE_TOKEN": "scope-token"})

        async def once() -> tuple[RunResult, list[GraphQLClient]]:
            result = await run_with(runner, plan_of(step, head), close=False)
            clients = list(runner._graphql.values())
            await runner.aclose()
            return result, clients

        result, clients = asyncio.run(once())
        assert result.status == "done", result.reason
        assert [p["query"].split()[0] for p in scope.payloads] == ["query", "mutation"]
        assert len(clients) == 1 and isinstance(clients[0], GraphQLClient)
