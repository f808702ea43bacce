"""Signed links at run time: a link made by `wlmap link` passes; an edited `externalData` is skipped with its reason.

Each event goes through the real runner (`rehearse.once.run_once`) with the stub transport answering the
GraphQL query and the target, so nothing but the signature decides whether a request is sent. The link itself
is built by the same code as `wlmap link` and read back from its text, as WorkLink would store it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mapper.language import loader
from mapper.language.plan import Plan
from mapper.links import build, signing, text
from mapper.rehearse.cases import run_suite
from mapper.rehearse.once import Rehearsal, run_once
from mapper.rehearse.stubs import StubTransport

KEY = "links-signing-key-for-tests"
MAPPING = """version: 1
name: signed-orders
link:
  signed: true
  parameters:
    order: { required: true, max_length: 12 }
    complete: boolean
trigger:
  topics: [scenario_session/completed]
connections:
  scope:
    url: https://scope.example.com/api/v3/graphql
  orders:
    base_url: https://orders.example.com
query:
  connection: scope
  graphql: |
    query S($id: ID!) { node(id: $id) { ... on ScenarioSession { id externalData } } }
  variables:
    id: "{{ event.resource_id }}"
extract:
  order: from_json(result.node.externalData).order
  complete: from_json(result.node.externalData).complete
steps:
  - name: update-order
    connection: orders
    method: PATCH
    path: "/orders/{{ order }}"
    json: { complete: "{{ complete }}" }
"""
BODY = json.dumps({"data": {"id": "U2Vzc2lvbi0x", "url": "https://cms.scopear.com/api/v3/graphql/object/x"}})
HEADERS = {"x-scope-topic": "scenario_session/completed", "x-scope-webhook-id": "d-1"}


@pytest.fixture(scope="module")
def plan() -> Plan:
    loaded, problems = loader.load_text(MAPPING, "signed.yaml")
    assert loaded is not None, problems
    return loaded


def external_data(plan: Plan, key: str = KEY, **values: str) -> dict[str, str]:
    """What WorkLink keeps from the link `wlmap link` would print for these values."""
    assert plan.link is not None
    built = build(plan.link, values, "P-101", signing.keys_from(key))
    return text.external_data(built.link, plan.link.target)


def run(plan: Plan, data: Any, env: dict[str, str] | None = None) -> tuple[Rehearsal, StubTransport]:
    stubs = StubTransport({"data": {"node": {"id": "U2Vzc2lvbi0x", "externalData": data}}})
    ran = asyncio.run(run_once(plan, BODY, HEADERS, {"WLMAP_LINK_KEY": KEY} if env is None else env, stubs=stubs))
    return ran, stubs


def sent(stubs: StubTransport) -> list[str]:
    return [f"{s.request.method} {s.request.url.raw_path.decode()}" for s in stubs.sent if s.step == "update-order"]


def test_a_signed_link_is_verified_and_runs(plan: Plan) -> None:
    data = external_data(plan, order="A-1/7", complete="true")
    ran, stubs = run(plan, data)
    assert ran.result is not None and ran.result.status == "done", ran.result
    assert sent(stubs) == ["PATCH /orders/A-1%2F7"]
    assert {"stage": "link", "signed": True, "verified": True} in ran.result.trace["stages"]


def test_externalData_as_json_text_is_verified_too(plan: Plan) -> None:
    ran, stubs = run(plan, json.dumps(external_data(plan, order="A-1")))
    assert ran.result is not None and ran.result.status == "done"
    assert sent(stubs) == ["PATCH /orders/A-1"]


@pytest.mark.parametrize(
    ("edit", "detail"),
    [
        ({"order": "A-2"}, ": externalData was changed after the link was made, or it was signed with another key"),
        ({"complete": "true"}, ": externalData was changed after the link was made, or it was signed with another key"),
        ({"sig": None}, " (the link carried no `sig`)"),
    ],
)
def test_an_edited_link_is_skipped_with_its_reason(plan: Plan, edit: dict[str, Any], detail: str) -> None:
    data: dict[str, Any] = external_data(plan, order="A-1")
    data.update(edit)
    data = {k: v for k, v in data.items() if v is not None}
    ran, stubs = run(plan, data)
    assert ran.result is not None
    assert (ran.result.status, ran.result.reason) == ("skipped", "deep link signature does not match" + detail)
    assert sent(stubs) == []
    assert {"stage": "link", "signed": True, "verified": False} in ran.result.trace["stages"]


def test_an_event_without_externalData_is_skipped(plan: Plan) -> None:
    ran, stubs = run(plan, None)
    assert ran.result is not None
    assert ran.result.reason == "deep link signature does not match (the event carries no externalData)"
    assert sent(stubs) == []


def test_a_link_signed_with_another_key_is_skipped_and_an_old_key_still_counts(plan: Plan) -> None:
    data = external_data(plan, key="another-key", order="A-1")
    ran, _ = run(plan, data)
    assert ran.result is not None and ran.result.status == "skipped"
    ran, _ = run(plan, data, {"WLMAP_LINK_KEY": f"another-key,{KEY}"})  # during a rotation: old,new
    assert ran.result is not None and ran.result.status == "done"


def test_without_a_key_the_event_is_parked_not_skipped(plan: Plan) -> None:
    ran, stubs = run(plan, external_data(plan, order="A-1"), {})
    assert ran.result is not None
    assert (ran.result.status, ran.result.reason) == (
        "dead",
        "the mapping requires signed deep links, and WLMAP_LINK_KEY is not set",
    )
    assert sent(stubs) == []


def test_the_key_never_appears_in_a_trace(plan: Plan) -> None:
    ran, _ = run(plan, {"order": KEY, "sig": "x"})
    assert ran.result is not None
    assert KEY not in ran.result.trace_json


def test_wlmap_test_cases_give_the_link_and_prove_the_round_trip(plan: Plan, tmp_path: Path) -> None:
    """A tests file with `link:` runs the signed mapping; an unknown parameter is the case's failure."""
    mapping = tmp_path / "signed.yaml"
    mapping.write_text(MAPPING)
    (tmp_path / "signed.tests.yaml").write_text(
        f"""env: {{ WLMAP_LINK_KEY: {KEY} }}
cases:
  - name: the link comes back and is verified
    event: {json.dumps(BODY)}
    headers: {json.dumps(HEADERS)}
    graphql: {{ data: {{ node: {{ id: U2Vzc2lvbi0x, externalData: {{ order: nothing-here }} }} }} }}
    link: {{ asset: P-101, order: "B 7/ü", complete: true }}
    expect:
      outcome: done
      requests: [ {{ step: update-order, path: /orders/B%207%2F%C3%BC, json: {{ complete: "true" }} }} ]
  - name: a misspelt parameter fails the case
    event: {json.dumps(BODY)}
    headers: {json.dumps(HEADERS)}
    link: {{ asset: P-101, ordr: "1" }}
    expect: {{ outcome: done }}
"""
    )
    loaded, _ = loader.load_file(mapping)
    assert loaded is not None
    suite = run_suite(loaded, tmp_path / "signed.tests.yaml")
    assert [r.failures for r in suite.results] == [
        [],
        ["link: `ordr` is not a parameter of this link: did you mean `order`?; `order` is required"],
    ]
