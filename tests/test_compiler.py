"""mapper.language.compiler: a read mapping → an immutable Plan, every expression compiled and every name resolved."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from mapper.errors import Problem
from mapper.language import compiler, loader
from mapper.language.plan import DEFAULT_RETRY_STATUSES, DEFAULT_SCHEDULE, Plan

ENV = {"SCOPE_URL": "https://cms.example.com/api/v3/graphql", "TOKEN": "t", "TARGET": "https://t.example.com"}

BASE = """version: 1
name: demo
trigger:
  topics: [scenario_session/completed]
connections:
  scope:
    url: "{{ env.SCOPE_URL }}"
    headers:
      Authorization: "Token token={{ env.TOKEN }}"
  target:
    base_url: "{{ env.TARGET }}"
query:
  connection: scope
  graphql: |
    query Session($id: ID!) {
      node(id: $id) { ... on ScenarioSession { id endedAt externalData } }
    }
  variables:
    id: "{{ event.resource_id }}"
extract:
  order: result.node.externalData.order
  ended_at: result.node.endedAt
skip_unless: order && ended_at
steps:
  - name: read-order
    connection: target
    method: GET
    path: "/orders/{{ order }}"
    capture:
      etag: headers.etag
  - name: update-order
    connection: target
    method: PATCH
    path: "/orders/{{ order }}"
    headers:
      If-Match: "{{ steps.read_order.etag }}"
    json:
      ended: "{{ ended_at | iso8601 }}"
"""


def load(text: str, env: Mapping[str, str] | None = ENV) -> tuple[Plan | None, list[Problem]]:
    return loader.load_text(text, "m.yaml", compiler.Options(env=env))


def plan_of(text: str) -> Plan:
    plan, problems = load(text)
    assert plan is not None and problems == [], problems
    return plan


def problems_of(text: str, env: Mapping[str, str] | None = ENV) -> list[tuple[int, int, str]]:
    _, problems = load(text, env)
    return [(p.location.line, p.location.column, p.message) for p in problems]


def changed(*pairs: tuple[str, str]) -> str:
    text = BASE
    for old, new in pairs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


# --------------------------------------------------------------------------------------- the plan


def test_a_valid_mapping_compiles() -> None:
    plan = plan_of(BASE)
    assert plan.name == "demo"
    assert [s.name for s in plan.steps] == ["read-order", "update-order"]
    assert [s.key for s in plan.steps] == ["read_order", "update_order"]
    assert plan.env_names == frozenset(ENV)
    assert plan.trigger.topics == frozenset({"scenario_session/completed"})
    assert plan.query is not None and plan.query.variables.render({"event": {"resource_id": "X"}}) == {"id": "X"}


def test_defaults() -> None:
    target = plan_of(BASE).connections["target"]
    assert target.timeout == 30.0
    assert target.tls.verify is True
    assert target.auth.kind == "none"
    assert target.csrf is None
    assert target.retry.statuses == DEFAULT_RETRY_STATUSES == frozenset({408, 425, 429, 500, 502, 503, 504})
    assert target.retry.schedule == DEFAULT_SCHEDULE == (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    assert (target.retry.jitter, target.retry.max_retry_after, target.retry.quick_retries) == (0.2, 3600.0, 2)
    assert target.retry.network_errors is True


def test_settings_are_read() -> None:
    plan = plan_of(
        changed(
            (
                '    base_url: "{{ env.TARGET }}"\n',
                """    base_url: "{{ env.TARGET }}"
    timeout: 1.5m
    tls: {verify: false, ca_file: ca.pem}
    csrf: {}
    idempotency_header: Idempotency-Key
    auth:
      api_key: {name: apikey, value: "{{ env.TOKEN }}", in: query}
    retry:
      statuses: [503]
      network_errors: false
      schedule: [0, 500ms, 1d]
      jitter: 0
      max_retry_after: 2m
      quick_retries: 0
""",
            )
        )
    )
    target = plan.connections["target"]
    assert target.timeout == 90.0
    assert (target.tls.verify, target.tls.ca_file) == (False, "ca.pem")
    assert (target.csrf.fetch_path, target.csrf.header) == ("/", "x-csrf-token")  # type: ignore[union-attr]
    assert target.idempotency_header == "Idempotency-Key"
    assert (target.auth.kind, target.auth.name, target.auth.placement) == ("api_key", "apikey", "query")
    assert target.retry.statuses == frozenset({503})
    assert target.retry.schedule == (0.0, 0.5, 86400.0)
    assert (target.retry.network_errors, target.retry.jitter, target.retry.max_retry_after) == (False, 0.0, 120.0)
    assert target.retry.quick_retries == 0


def test_default_outcomes() -> None:
    step = plan_of(BASE).steps[0]
    assert [step.outcome_for(s) for s in (200, 204, 299, 301, 404, 500)] == ["success"] * 3 + [None] * 3
    step = plan_of(
        changed(
            (
                "      etag: headers.etag\n",
                "      etag: headers.etag\n    expect: [200]\n    on_status: {'404': skip, '5xx': retry}\n",
            )
        )
    ).steps[0]
    assert [step.outcome_for(s) for s in (200, 204, 404, 503)] == ["success", None, "skip", "retry"]


def test_values_keep_their_types_and_paths_are_encoded() -> None:
    step = plan_of(BASE).steps[1]
    assert step.path is not None and step.body.value is not None
    scope = {"order": "A/1", "ended_at": "2024-05-01T12:00:00+02:00", "steps": {"read_order": {"etag": "W/1"}}}
    assert step.path.render(scope) == "/orders/A%2F1"
    assert step.body.value.render(scope) == {"ended": "2024-05-01T10:00:00Z"}


# --------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("pairs", "message", "marked"),
    [
        (
            [('"/orders/{{ order }}"\n    capture', '"/orders/{{ ordr }}"\n    capture')],
            "`ordr` is not defined here",
            "ordr",
        ),
        (
            [("{{ steps.read_order.etag }}", "{{ steps.read_ordr.etag }}")],
            "there is no step `read_ordr` before this one",
            "read_ordr",
        ),
        ([("{{ steps.read_order.etag }}", "{{ steps.read_order.tag }}")], "step `read_order` captures no `tag`", "tag"),
        (
            [('"/orders/{{ order }}"\n    capture', '"/orders/{{ steps.update_order.x }}"\n    capture')],
            "step `update_order` runs later, so its values are not there yet",
            "update_order",
        ),
        (
            [("{{ steps.read_order.etag }}", "{{ steps.update_order.etag }}")],
            "step `update_order` is this step: its captures are there only for the steps after it",
            "update_order",
        ),
        (
            [("      etag: headers.etag", "      etag: result.node.id")],
            "`result` cannot be used inside `capture`",
            "result",
        ),
        ([('    id: "{{ event.resource_id }}"', '    id: "{{ event.id }}"')], "the event has no field `id`", "id"),
        (
            [
                (
                    "  order: result.node.externalData.order",
                    "  order: result.node.externalData.order\n  x: result.node.state",
                )
            ],
            "the query does not select `state` under `node`",
            "state",
        ),
        (
            [("skip_unless: order && ended_at", "skip_unless: order && item")],
            "`item` is only there in a step with `for_each`",
            "item",
        ),
        (
            [("  topics: [scenario_session/completed]", "  topics: [scenario_session/completed]\n  when: order")],
            "`order` is not defined in `trigger`",
            "order",
        ),
        (
            [('      Authorization: "Token token={{ env.TOKEN }}"', '      Authorization: "Token {{ payload.t }}"')],
            "`payload` cannot be used in a connection",
            "payload",
        ),
        (
            [("skip_unless: order && ended_at", "skip_unless: order != null")],
            "`null` is read as a field name here, not as the value null",
            "null",
        ),
        (
            [("    connection: target\n    method: GET", "    connection: targt\n    method: GET")],
            "there is no connection `targt`",
            "targt",
        ),
    ],
)
def test_names_are_resolved(pairs: list[tuple[str, str]], message: str, marked: str) -> None:
    plan, problems = load(changed(*pairs))
    assert plan is None and [p.message for p in problems] == [message]
    location = problems[0].location
    line = problems[0].source_line or ""
    assert line[location.column - 1 : location.column - 1 + location.width] == marked


def test_step_names_with_dash_or_underscore_are_one_name() -> None:
    messages = [m for _, _, m in problems_of(changed(("  - name: update-order", "  - name: read_order")))]
    assert messages[0] == "two steps are named `read_order`"


def test_for_each_brings_item_and_index() -> None:
    text = changed(
        ("    method: PATCH\n", "    method: PATCH\n    for_each: result.node.externalData.lines\n"),
        (
            '      ended: "{{ ended_at | iso8601 }}"',
            '      ended: "{{ ended_at | iso8601 }}"\n      line: "{{ item.id }}"\n      position: "{{ index }}"',
        ),
    )
    step = plan_of(text).steps[1]
    assert step.for_each is not None and step.for_each.source == "result.node.externalData.lines"


def test_payload_only_mapping_without_query() -> None:
    text = """version: 1
name: p
trigger: {topics: [scenario_session/completed]}
connections: {t: {base_url: "https://t.example.com"}}
extract: {order: payload.data.node.externalData.order}
steps:
  - {name: s, connection: t, method: POST, path: "/o/{{ order }}", json: {topic: "{{ event.topic }}"}}
"""
    assert plan_of(text).query is None
    assert [m for _, _, m in problems_of(text.replace("payload.data", "result.data"))] == [
        "`result` is only there when the mapping has a `query`"
    ]


# --------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ('"{{ env.TARGET }}"', True),
        ('"https://{{ env.HOST }}.example.com/api"', True),
        ('"https://example.com/{{ env.TENANT }}"', True),
        ('"https://{{ event.domain }}/api"', False),
        ('"https://{% if env.A %}a{% endif %}.example.com"', False),  # tags cannot be checked one by one
        ('"https://{% if payload.a %}evil{% else %}good{% endif %}.example.com"', False),
        ('"https://{{ env.A ~ payload.b }}"', False),
        ('"https://{{ env[payload.b] }}"', False),
        ('"https://{{ payload.host }}"', False),
    ],
)
def test_only_env_in_a_url_host(url: str, ok: bool) -> None:
    text = changed(('    base_url: "{{ env.TARGET }}"', f"    base_url: {url}"))
    messages = [m for _, _, m in problems_of(text, env=None)]
    assert (messages == []) is ok, messages
    if not ok:
        assert messages == ["the scheme and host of a URL may only come from `env`"]


def test_a_url_needs_a_scheme() -> None:
    text = changed(('    base_url: "{{ env.TARGET }}"', "    base_url: target.example.com"))
    assert [m for _, _, m in problems_of(text)] == ["a URL must start with `https://` (or `http://`)"]


def test_a_path_starts_with_a_slash() -> None:
    text = changed(('    path: "/orders/{{ order }}"\n    capture', '    path: "orders/{{ order }}"\n    capture'))
    assert [m for _, _, m in problems_of(text)] == ["a path starts with `/`"]


def test_a_get_sends_no_body() -> None:
    text = changed(("      etag: headers.etag\n", "      etag: headers.etag\n    json: {a: 1}\n"))
    assert [m for _, _, m in problems_of(text)] == ["a GET request cannot send a body"]


# --------------------------------------------------------------------------------------- warnings


def test_env_variables_not_set_are_warnings_only_when_the_environment_is_given() -> None:
    plan, problems = load(BASE, env={})
    assert plan is not None
    assert sorted({p.message for p in problems}) == [
        "environment variable `SCOPE_URL` is not set",
        "environment variable `TARGET` is not set",
        "environment variable `TOKEN` is not set",
    ]
    assert all(p.severity == "warning" for p in problems)
    assert load(BASE, env=None)[1] == []


def test_unused_things_are_warned_about_only_when_there_is_no_error() -> None:
    unused = changed(("  ended_at: result.node.endedAt", "  ended_at: result.node.endedAt\n  spare: result.node.id"))
    plan, problems = load(unused)
    assert plan is not None and [p.message for p in problems] == ["`spare` is extracted but never used"]
    broken = unused.replace('"{{ ended_at | iso8601 }}"', '"{{ ended_at | iso_8601 }}"')
    assert [m for _, _, m in problems_of(broken)] == ["unknown filter `iso_8601`"]


def test_a_broken_extraction_does_not_make_its_name_unknown() -> None:
    text = changed(("  order: result.node.externalData.order", "  order: result.node.externalData.[order"))
    assert [m for _, _, m in problems_of(text)] == ["JMESPath: the expression ends too early"]


def test_a_refused_yaml_value_is_reported_once() -> None:
    text = changed(("skip_unless: order && ended_at", "skip_unless: !!str order && ended_at"))
    assert [m for _, _, m in problems_of(text)] == ["tags such as `!!str` are not allowed"]


def test_an_empty_file() -> None:
    assert problems_of("# nothing yet\n") == [(0, 0, "the file is empty")]


@pytest.mark.parametrize("top", ["[]", "a list", "42", "- a"])
def test_a_file_that_is_not_key_value_pairs_is_one_problem(top: str) -> None:
    problems = problems_of(top + "\n")
    assert len(problems) == 1 and problems[0][2].startswith("the file must be a set of `key: value` pairs")


def test_the_example_mappings_compile() -> None:
    loaded = loader.load([Path(__file__).resolve().parents[1] / "mappings"], env=None)
    assert loaded.errors == []
    assert len(loaded.plans) >= 3


GRAPHQL_STEPS = (
    BASE.replace(
        '  target:\n    base_url: "{{ env.TARGET }}"\n',
        '  target:\n    base_url: "{{ env.TARGET }}"\n  assets:\n    url: "{{ env.TARGET }}/graphql"\n',
    )
    + """  - name: find-asset
    connection: assets
    graphql: "query Find($tag: String!) { assetByTag(tag: $tag) { id } }"
    variables: {tag: "{{ order }}"}
    capture: {id: body.data.assetByTag.id}
    outcomes:
      - when: "body.data && !(body.data.assetByTag)"
        outcome: skip
        reason: "no asset {{ order }} ({{ status }})"
  - name: record
    connection: assets
    graphql: "mutation Record($id: ID!, $n: Int) { record(id: $id, n: $n) { id } }"
    variables: {id: "{{ steps.find_asset.id }}", n: 3}
    on_error: {NOT_FOUND: skip}
"""
)


def test_graphql_steps_and_outcome_rules_compile_into_the_plan() -> None:
    plan, problems = load(GRAPHQL_STEPS)
    assert plan is not None, problems
    find, record = plan.steps[2:]
    assert find.graphql is not None and record.graphql is not None
    assert (find.method, find.graphql.mutation, record.graphql.mutation) == ("POST", False, True)
    assert (find.path, find.url, find.body.kind) == (None, None, "none")
    assert record.graphql.variables.render({"steps": {"find_asset": {"id": "A1"}}}) == {"id": "A1", "n": 3}
    (rule,) = find.outcomes
    assert (rule.outcome, rule.when.source) == ("skip", "body.data && !(body.data.assetByTag)")
    assert rule.when.search({"status": 200, "headers": {}, "body": {"data": {"assetByTag": None}}}) is True
    assert rule.reason is not None and rule.reason.render({"order": "A-17", "status": 200}) == "no asset A-17 (200)"
    assert dict(record.on_error) == {"NOT_FOUND": "skip"}
    assert plan.steps[0].outcomes == () and plan.steps[0].graphql is None and dict(plan.steps[0].on_error) == {}


def test_secrets_and_allow_unsigned_are_read_and_a_secret_nobody_reads_is_a_warning() -> None:
    text = BASE.replace("name: demo\n", "name: demo\nsecrets: [TARGET, TOKNE]\n").replace(
        "  topics: [scenario_session/completed]\n", "  topics: [scenario_session/completed]\n  allow_unsigned: true\n"
    )
    plan, problems = load(text)
    assert plan is not None
    assert plan.secrets == frozenset({"TARGET", "TOKNE"}) and plan.trigger.allow_unsigned is True
    [warning] = [p for p in problems if "secret" in p.message]
    assert (warning.severity, warning.message, warning.hint) == (
        "warning",
        "`TOKNE` is marked secret but no template reads `env.TOKNE`",
        "did you mean `TOKEN`?",
    )
    assert (warning.location.line, warning.location.column) == (3, 19)
    default, _ = load(BASE)
    assert default is not None and default.secrets == frozenset() and default.trigger.allow_unsigned is False
