"""The runner end to end over real HTTP: a fake Scope AR GraphQL server and fake targets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
from typing import Any

import pytest
from fakes import FakeOAuth2, FakeSap, FakeScope, FakeServer, Reply

from mapper.events import normalise
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.run.outcome import RunResult
from mapper.run.runner import Runner

CALL = "Q2FsbFNlc3Npb24tMQ=="
EVENT = {
    "time": "2024-05-01T10:12:31Z",
    "event": "update",
    "type": "resource",
    "data": {"resource-id": CALL, "resource-url": "https://cms.scopear.com/x", "resource-type": "CallSession"},
}
NODE = {"id": CALL, "state": "ended", "duration": 754, "externalData": {"incident": "INC0010001"}}

HEAD = """
version: 1
name: runner-test
trigger: {events: [updated], resource_types: [CallSession]}
connections:
  scope:
    url: "{{ env.SCOPE_URL }}"
    headers: {Authorization: "Token token={{ env.SCOPE_TOKEN }}"}
  target:
    base_url: "{{ env.TARGET_URL }}"
    %(auth)s
query:
  connection: scope
  graphql: "query ($id: ID!) { node(id: $id) { ... on CallSession { id state duration externalData } } }"
  variables: {id: "{{ event.resource_id }}"}
extract:
  incident: result.node.externalData.incident
  seconds: result.node.duration
  ended: result.node.state == 'ended'
skip_unless: ended && incident
steps:
"""


def plan_of(steps: str, auth: str = "", head: str = HEAD) -> Plan:
    text = head % {"auth": auth} + textwrap.indent(textwrap.dedent(steps), "  ")
    plan, problems = loader.load_text(text, "tests/runner.yaml")
    assert plan is not None, "\n".join(f"{p.location}: {p.message}" for p in problems)
    return plan


def run(plan: Plan, env: dict[str, str], event: Any = EVENT, key: str = "job-1") -> RunResult:
    async def once() -> RunResult:
        runner = Runner(env)
        try:
            return await runner.run(plan, normalise(json.dumps(event).encode(), {}), idempotency_key=key)
        finally:
            await runner.aclose()

    return asyncio.run(once())


@pytest.fixture
def world() -> Any:
    with FakeServer() as server:
        scope = FakeScope(server, token="scope-canary-token-1234")
        env = {"SCOPE_URL": scope.url, "SCOPE_TOKEN": "scope-canary-token-1234", "TARGET_URL": server.url}
        yield server, scope, env


LOOKUP_THEN_UPDATE = """
- name: find-incident
  connection: target
  method: GET
  path: /api/now/table/incident
  params: {sysparm_query: "number={{ incident }}", sysparm_limit: 1}
  capture: {sys_id: "body.result[0].sys_id"}
- name: update-incident
  connection: target
  method: PATCH
  path: "/api/now/table/incident/{{ steps.find_incident.sys_id }}"
  json:
    u_call_seconds: "{{ seconds }}"
    u_ended: "{{ ended }}"
    work_notes: "Call ended after {{ (seconds / 60) | round(1) }} min"
  expect: [200]
"""


def test_capture_chain_lookup_then_update(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    server.route("GET", "/api/now/table/incident", Reply.json({"result": [{"sys_id": "a" * 32}]}))
    server.route("PATCH", "/api/now/table/incident/*", Reply.json({"result": {}}))
    result = run(plan_of(LOOKUP_THEN_UPDATE), env)
    assert result.status == "done", result.reason
    assert scope.payloads[0]["variables"] == {"id": CALL}
    lookup, update = server.requests_to("/api/now/table/incident*")
    assert lookup.params == {"sysparm_query": ["number=INC0010001"], "sysparm_limit": ["1"]}
    assert update.method == "PATCH" and update.path == "/api/now/table/incident/" + "a" * 32
    # a single-expression value keeps its type: a number and a boolean, not "754" and "True"
    assert update.json() == {"u_call_seconds": 754, "u_ended": True, "work_notes": "Call ended after 12.6 min"}


def test_skip_unless_records_the_reason_and_sends_nothing(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": {**NODE, "state": "active"}}))
    result = run(plan_of(LOOKUP_THEN_UPDATE), env)
    assert result.status == "skipped"
    assert "skip_unless `ended && incident` is false" in result.reason and "ended=false" in result.reason
    assert server.requests_to("/api/now/*") + server.requests_to("/api/things*") == []


def test_for_each_sends_one_request_per_item_with_item_and_index(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": {**NODE, "externalData": {"incident": "INC1", "parts": ["p-1", "p/2"]}}}))
    server.route("POST", "/parts/*", Reply.json({"id": "x"}, status=201))
    plan = plan_of("""
    - name: add-part
      connection: target
      method: POST
      for_each: result.node.externalData.parts
      path: "/parts/{{ item }}"
      json: {position: "{{ index }}", part: "{{ item }}"}
      capture: {id: body.id}
    """)
    result = run(plan, env)
    assert result.status == "done", result.reason
    sent = server.requests_to("/parts/*")
    assert [r.raw_path for r in sent] == ["/parts/p-1", "/parts/p%2F2"]  # data cannot add a path segment
    assert [r.json() for r in sent] == [{"position": 0, "part": "p-1"}, {"position": 1, "part": "p/2"}]
    step = next(s for s in result.trace["stages"] if s.get("name") == "add-part" and s.get("item") == 1)
    assert step["captured"] == {"id": "x"}


@pytest.mark.parametrize(
    ("status", "on_status", "expected"),
    [
        (404, {"404": "skip"}, "skipped"),
        (409, {"409": "success"}, "done"),
        (400, {}, "dead"),
        (422, {"4xx": "retry"}, "retry"),
        (503, {}, "retry"),
        (429, {}, "retry"),
        (500, {"500": "fail"}, "dead"),
    ],
)
def test_per_status_outcomes(world: Any, status: int, on_status: dict[str, str], expected: str) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    server.route("POST", "/things", Reply.json({"error": "x"}, status=status, headers=[("retry-after", "120")]))
    rules = "".join(f"\n    '{k}': {v}" for k, v in on_status.items())
    plan = plan_of(
        f"""
    - name: create-thing
      connection: target
      method: POST
      path: /things
      json: {{a: 1}}
      on_status: {{{", ".join(f"'{k}': {v}" for k, v in on_status.items())}}}
    """
        if on_status
        else """
    - name: create-thing
      connection: target
      method: POST
      path: /things
      json: {a: 1}
    """
    )
    assert rules is not None
    result = run(plan, env)
    assert result.status == expected, result.reason
    if expected != "done":
        assert result.step == "create-thing"
        assert "tests/runner.yaml:" in result.reason and f"answered {status}" in result.reason
    if expected == "retry" and status in (503, 429):
        assert result.retry_after == 120.0


def test_redirects_are_never_followed(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    with FakeServer() as elsewhere:
        elsewhere.route("*", "/*", Reply.json({}))  # a different server: a followed redirect would land here
        server.route("POST", "/things", Reply(status=302, headers=[("location", elsewhere.url + "/stolen")]))
        plan = plan_of("""
        - name: create-thing
          connection: target
          method: POST
          path: /things
          json: {a: 1}
        """)
        result = run(plan, env)
        assert result.status == "dead" and "redirects are never followed" in result.reason
        assert elsewhere.requests == []


def test_graphql_authorization_error_is_permanent_and_5xx_retryable(world: Any) -> None:
    server, scope, env = world
    plan = plan_of(LOOKUP_THEN_UPDATE)
    scope.answer(FakeScope.errors("Not authorized to read object"), FakeScope.status(502))
    result = run(plan, env)
    assert result.status == "dead" and "Not authorized to read object" in result.reason
    result = run(plan, env)
    assert result.status == "retry", result.reason
    assert server.requests_to("/api/now/*") + server.requests_to("/api/things*") == []


@pytest.mark.parametrize(
    "hostile", ["../../admin", "@evil.example", "%2e%2e%2fadmin", "x/../../y", "evil.example:80/x", "?x=1#frag", ".."]
)
def test_data_cannot_change_where_a_request_goes(world: Any, hostile: str) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": {**NODE, "externalData": {"incident": hostile}}}))
    server.route("*", "/api/[nt]*", Reply.json({"result": {}}))
    plan = plan_of("""
    - name: update-incident
      connection: target
      method: PATCH
      path: "/api/now/table/incident/{{ incident }}"
      json: {a: 1}
    """)
    result = run(plan, env)
    for request in server.requests_to("/api/now/*") + server.requests_to("/api/things*"):
        assert request.raw_path.startswith("/api/now/table/incident/")
        assert request.raw_path.count("/") == 5, request.raw_path  # still one segment after incident/
        assert request.query == ""
    if hostile == "..":
        assert result.status == "dead" and "cannot be a URL path segment" in result.reason


def test_header_with_line_break_from_data_is_refused(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": {**NODE, "externalData": {"incident": "x\r\nX-Injected: 1"}}}))
    server.route("*", "/api/[nt]*", Reply.json({}))
    plan = plan_of("""
    - name: update-incident
      connection: target
      method: POST
      path: /api/things
      headers: {X-Incident: "{{ incident }}"}
      json: {a: 1}
    """)
    result = run(plan, env)
    assert result.status == "dead" and "not sent" in result.reason
    assert server.requests_to("/api/now/*") + server.requests_to("/api/things*") == []


def test_template_bomb_is_refused(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    server.route("*", "/api/[nt]*", Reply.json({}))
    plan = plan_of("""
    - name: bomb
      connection: target
      method: POST
      path: /api/things
      json: {text: "{{ incident * 50000000 }}"}
    """)
    result = run(plan, env)
    assert result.status == "dead" and "not allowed" in result.reason
    assert server.requests_to("/api/now/*") + server.requests_to("/api/things*") == []


def test_data_is_never_evaluated_as_a_template(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": {**NODE, "externalData": {"incident": "{{7*7}}"}}}))
    server.route("*", "/api/[nt]*", Reply.json({}))
    plan = plan_of("""
    - name: echo
      connection: target
      method: POST
      path: /api/things
      json: {title: "{{ incident }}", note: "ticket {{ incident }}"}
    """)
    assert run(plan, env).status == "done"
    assert server.requests_to("/api/things")[0].json() == {"title": "{{7*7}}", "note": "ticket {{7*7}}"}


def test_missing_field_names_the_step_and_mapping_line(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    server.route("*", "/api/[nt]*", Reply.json({"result": []}))
    plan = plan_of(LOOKUP_THEN_UPDATE)
    result = run(plan, env)
    assert result.status == "dead"
    line = next(i for i, text in enumerate(plan.lines, 1) if 'path: "/api/now/table/incident/{{' in text)
    assert f"tests/runner.yaml:{line}" in result.reason, result.reason
    assert "step `update-incident`" in result.reason


def test_idempotency_key_is_stable_across_retries(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    server.route("POST", "/things", Reply(status=503), Reply(status=201))
    plan = plan_of(
        """
    - name: create-thing
      connection: target
      method: POST
      path: /things
      json: {a: 1}
    """,
        auth="idempotency_header: Idempotency-Key",
    )
    first, second = run(plan, env, key="job-7"), run(plan, env, key="job-7")
    assert (first.status, second.status) == ("retry", "done")
    keys = [r.header("idempotency-key") for r in server.requests_to("/things")]
    assert keys[0] and len(set(keys)) == 1, keys
    other = run(plan, env, key="job-8")
    assert other.status == "done" and server.requests_to("/things")[-1].header("idempotency-key") != keys[0]


def test_sap_csrf_session_through_a_mapping(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    sap = FakeSap(server, user="wlmap", password="sap-canary-pass-9876")
    sap.expire_token_once()
    plan = plan_of(
        """
    - name: update-notification
      connection: target
      method: PATCH
      path: "/sap/opu/odata/sap/API_MAINTNOTIFICATION/MaintenanceNotification({{ incident | odata_quote | urlencode }})"
      headers: {If-Match: "*"}
      json: {MaintNotifLongTextForEdit: "Call took {{ seconds }} s"}
    """,
        auth="""auth: {basic: {username: "{{ env.SAP_USER }}", password: "{{ env.SAP_PASSWORD }}"}}
    csrf: {fetch_path: /sap/opu/odata/sap/API_MAINTNOTIFICATION/}""",
    )
    result = run(plan, {**env, "SAP_USER": "wlmap", "SAP_PASSWORD": "sap-canary-pass-9876"})
    assert result.status == "done", result.reason
    assert sap.fetches == 2 and sap.rejected == 1 and len(sap.writes) == 1  # refetched once after 403 Required
    write = sap.writes[0]
    assert write.path.endswith("MaintenanceNotification('INC0010001')")
    kinds = [e["kind"] for stage in result.trace["stages"] for e in stage.get("exchanges", [])]
    assert kinds.count("csrf-fetch") == 2  # auxiliary requests are in the trace


def test_oauth2_token_fetched_once_and_shared_across_events(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    oauth = FakeOAuth2(server, client_secret="oauth-canary-secret-5555")
    oauth.protect("POST", "/things", Reply.json({}, status=201))
    plan = plan_of(
        """
    - name: create-thing
      connection: target
      method: POST
      path: /things
      json: {a: 1}
    """,
        auth="""auth: {oauth2: {token_url: "{{ env.TARGET_URL }}/oauth/token", client_id: wlmap-client,
                       client_secret: "{{ env.OAUTH_SECRET }}", scopes: [write]}}""",
    )
    env = {**env, "OAUTH_SECRET": "oauth-canary-secret-5555"}

    async def three_events() -> list[RunResult]:
        runner = Runner(env)
        try:
            return [await runner.run(plan, normalise(json.dumps(EVENT).encode(), {})) for _ in range(3)]
        finally:
            await runner.aclose()

    results = asyncio.run(three_events())
    assert [r.status for r in results] == ["done"] * 3
    assert oauth.fetches == 1
    assert oauth.forms[0].get("scope") == "write"


CANARIES = ("scope-canary-token-1234", "sap-canary-pass-9876", "apikey-canary-3141")


def test_secrets_never_appear_in_results_or_traces(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    server.route(
        "*", "/api/[nt]*", Reply.json({"echo": "sap-canary-pass-9876", "key": "apikey-canary-3141"}, status=400)
    )
    plan = plan_of(
        """
    - name: create-thing
      connection: target
      method: POST
      path: "/things/{{ env.SAP_PASSWORD }}"
      params: {token: "{{ env.API_KEY }}"}
      headers: {X-Secret: "{{ env.SAP_PASSWORD }}"}
      json: {password: "{{ env.SAP_PASSWORD }}", note: "key {{ env.API_KEY }}"}
    """,
        auth='auth: {api_key: {name: apikey, value: "{{ env.API_KEY }}", in: query}}',
    )
    result = run(plan, {**env, "SAP_PASSWORD": "sap-canary-pass-9876", "API_KEY": "apikey-canary-3141"})
    assert result.status == "dead"
    assert server.requests_to("/things/*")[0].params["apikey"] == ["apikey-canary-3141"]  # it was really sent
    everything = json.dumps(result.trace) + result.reason
    for canary in CANARIES:
        assert canary not in everything


def _echo_headers(request: Any) -> Reply:
    """A target's error page that shows the request's headers back, as some SAP and ServiceNow pages do."""
    shown = "\n".join(f"{name}: {value}" for name, value in request.headers)
    return Reply.text(f"<html><pre>Request refused\n{shown}</pre></html>", status=500)


def test_a_target_echoing_the_request_headers_shows_no_credential_in_any_form(world: Any) -> None:
    """Basic auth, a CSRF token and a session cookie echoed in a 500 page: every form is masked in the reason
    and the trace (the base64 of user:password leaked before: the trace's masker did not know it)."""
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    token, session = "csrf-canary-token-7777", "cookie-canary-session-8888"
    fetch = Reply.json({}, headers=[("x-csrf-token", token), ("set-cookie", f"SESSION={session}; Path=/; HttpOnly")])
    server.route("GET", "/svc/", fetch)
    server.route("PATCH", "/svc/thing", _echo_headers)
    plan = plan_of(
        """
    - name: update-thing
      connection: target
      method: PATCH
      path: /svc/thing
      json: {text: "call took {{ seconds }} s"}
    """,
        auth="""auth: {basic: {username: "{{ env.SAP_USER }}", password: "{{ env.SAP_PASSWORD }}"}}
    csrf: {fetch_path: /svc/}""",
    )
    password = "sap-canary-pass-9876"
    result = run(plan, {**env, "SAP_USER": "svc-user", "SAP_PASSWORD": password})
    assert result.status == "retry"
    sent = server.requests_to("/svc/thing")[0]
    basic = base64.b64encode(f"svc-user:{password}".encode()).decode()
    assert sent.header("authorization") == f"Basic {basic}" and session in (sent.header("cookie") or "")
    assert "Request refused" in result.reason  # the page is quoted, masked
    everything = json.dumps(result.trace, ensure_ascii=False) + result.reason
    for canary in (password, basic, token, session, base64.b64encode(password.encode()).decode()):
        assert canary not in everything, canary
    [step] = [stage for stage in result.trace["stages"] if stage["stage"] == "step"]
    assert "authorization: Basic ***" in step["exchanges"][-1]["response_body"]


def test_env_values_that_are_not_secrets_are_shown_by_name(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    server.route("POST", "/things", Reply.json({}, status=201))
    plan = plan_of(
        """
    - name: create-thing
      connection: target
      method: POST
      path: /things
      json: {caller: "{{ env.CALLER_ID }}", client: "{{ env.SHORT }}"}
    """
    )
    result = run(plan, {**env, "CALLER_ID": "6816f79cc0a8016401c5a33be04be441", "SHORT": "0100"})
    assert result.status == "done", result.reason
    [step] = [stage for stage in result.trace["stages"] if stage["stage"] == "step"]
    [exchange] = step["exchanges"]
    assert exchange["url"] == "‹TARGET_URL›/things"
    assert json.loads(exchange["request_body"]) == {"caller": "‹CALLER_ID›", "client": "0100"}
    [query] = [stage for stage in result.trace["stages"] if stage["stage"] == "query"]
    assert query["exchanges"][0]["url"] == "‹SCOPE_URL›"
    assert query["exchanges"][0]["request_headers"]["authorization"] == "***"  # used in a header: a secret


def test_a_variable_the_mapping_marks_secret_is_masked_not_named(world: Any) -> None:
    server, scope, env = world
    scope.answer(FakeScope.data({"node": NODE}))
    server.route("POST", "/things", Reply.json({"stored": "6816f79cc0a8016401c5a33be04be441"}, status=400))
    head = HEAD.replace("name: runner-test\n", "name: runner-test\nsecrets: [CALLER_ID]\n")
    plan = plan_of(
        """
    - name: create-thing
      connection: target
      method: POST
      path: /things
      json: {caller: "{{ env.CALLER_ID }}", password: "{{ env.DB_PASSWORD }}"}
    """,
        head=head,
    )
    result = run(plan, {**env, "CALLER_ID": "6816f79cc0a8016401c5a33be04be441", "DB_PASSWORD": "db-canary-pw"})
    assert result.status == "dead"
    [step] = [stage for stage in result.trace["stages"] if stage["stage"] == "step"]
    assert json.loads(step["exchanges"][0]["request_body"]) == {"caller": "***", "password": "***"}
    assert result.reason.endswith('answered 400: {"stored": "***"}')
