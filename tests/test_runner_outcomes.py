"""A step's answer decides its outcome: `outcomes:` rules, `on_status`, `expect`, the defaults, over real HTTP.

The target is a fake server on 127.0.0.1; each test sends the mapping's request to it and checks the run's result.
"""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
from fakes import FakeServer, Reply

from mapper.events import normalise
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.run.outcome import RunResult
from mapper.run.runner import Runner

EVENT = {"data": {"id": "U2NlbmFyaW9TZXNzaW9uLTE=", "url": "https://cms.scopear.com/x"}}
HEADERS = {"x-scope-topic": "scenario_session/completed", "x-scope-webhook-id": "d-1"}

HEAD = """
version: 1
name: outcomes-test
trigger: {topics: [scenario_session/completed]}
connections:
  target:
    base_url: "{{ env.TARGET_URL }}"
extract:
  order: "'A-17'"
steps:
"""


def plan_of(steps: str) -> Plan:
    plan, problems = loader.load_text(HEAD + textwrap.indent(textwrap.dedent(steps), "  "), "tests/outcomes.yaml")
    assert plan is not None, "\n".join(f"{p.location}: {p.message}" for p in problems)
    return plan


def run(plan: Plan, server: FakeServer) -> RunResult:
    async def once() -> RunResult:
        runner = Runner({"TARGET_URL": server.url})
        try:
            return await runner.run(plan, normalise(json.dumps(EVENT).encode(), HEADERS), idempotency_key="job-1")
        finally:
            await runner.aclose()

    return asyncio.run(once())


LOOKUP = """
- name: find-order
  connection: target
  method: GET
  path: /query
  capture: {id: "body.records[0].Id"}
  outcomes:
    - when: body.totalSize == `0`
      outcome: skip
      reason: "no work order {{ order }} ({{ status }}, {{ body.totalSize }} found)"
    - when: status == `409` && headers."x-conflict" == 'duplicate'
      outcome: success
    - when: body.errorCode == 'REQUEST_LIMIT_EXCEEDED'
      outcome: retry
    - when: body.errorCode == 'INVALID_TYPE'
      outcome: fail
- name: update-order
  connection: target
  method: PATCH
  path: "/orders/{{ steps.find_order.id }}"
  json: {done: true}
  expect: [204]
"""


def test_a_rule_skips_with_its_reason_and_later_steps_do_not_run() -> None:
    with FakeServer() as server:
        server.route("GET", "/query", Reply.json({"totalSize": 0, "done": True, "records": []}))
        result = run(plan_of(LOOKUP), server)
        assert result.status == "skipped"
        assert result.reason == "step `find-order` (tests/outcomes.yaml:12): no work order A-17 (200, 0 found)"
        assert result.step == "find-order"
        assert server.requests_to("/orders/*") == []
        stage = next(s for s in result.trace["stages"] if s.get("name") == "find-order")
        assert (stage["outcome"], stage["decided_by"]) == ("skip", "outcomes 1")


def test_a_rule_counts_an_answer_as_success_and_the_run_goes_on() -> None:
    with FakeServer() as server:
        server.route("GET", "/query", Reply.json({"records": [{"Id": "x1"}]}, 409, [("x-conflict", "duplicate")]))
        server.route("PATCH", "/orders/*", Reply(204))
        result = run(plan_of(LOOKUP), server)
        assert result.status == "done", result.reason
        assert [r.path for r in server.requests_to("/orders/*")] == ["/orders/x1"]


def test_a_rule_retries_with_the_answer_in_words_and_its_retry_after() -> None:
    with FakeServer() as server:
        body = {"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}
        server.route("GET", "/query", Reply.json(body, 403, [("retry-after", "120")]))
        result = run(plan_of(LOOKUP), server)
        assert result.status == "retry"
        assert result.retry_after == 120.0
        assert result.reason.startswith("step `find-order` (tests/outcomes.yaml:12): target answered 403: {")
        assert "REQUEST_LIMIT_EXCEEDED" in result.reason


def test_a_rule_fails_an_answer_the_defaults_would_take_as_success() -> None:
    with FakeServer() as server:
        server.route("GET", "/query", Reply.json({"errorCode": "INVALID_TYPE"}))
        result = run(plan_of(LOOKUP), server)
        assert result.status == "dead"
        assert (
            result.reason
            == 'step `find-order` (tests/outcomes.yaml:12): target answered 200: {"errorCode": "INVALID_TYPE"}'
        )


def test_no_rule_holds_so_the_status_decides() -> None:
    with FakeServer() as server:
        server.route("GET", "/query", Reply.json({"totalSize": 1, "records": [{"Id": "x1"}]}))
        server.route("PATCH", "/orders/*", Reply(204))
        assert run(plan_of(LOOKUP), server).status == "done"
        server.route("GET", "/query", Reply.text("busy", 503))
        result = run(plan_of(LOOKUP), server)
        assert (result.status, result.reason) == (
            "retry",
            "step `find-order` (tests/outcomes.yaml:12): target answered 503: busy",
        )


def test_expect_refuses_another_2xx() -> None:
    """docs/mapping.md: `expect` replaces "any 2xx" — a 200 for a step that expects 204 is a failure."""
    with FakeServer() as server:
        server.route("GET", "/query", Reply.json({"totalSize": 1, "records": [{"Id": "x1"}]}))
        server.route("PATCH", "/orders/*", Reply.json({"id": "x1"}))
        result = run(plan_of(LOOKUP), server)
        assert result.status == "dead"
        assert result.reason == (
            'step `update-order` (tests/outcomes.yaml:27): target answered 200: {"id": "x1"}, but the step expects 204'
        )


def test_expect_keeps_the_retry_of_a_5xx() -> None:
    with FakeServer() as server:
        server.route("GET", "/query", Reply.json({"totalSize": 1, "records": [{"Id": "x1"}]}))
        server.route("PATCH", "/orders/*", Reply.text("down", 502))
        assert run(plan_of(LOOKUP), server).status == "retry"


@pytest.mark.parametrize(
    ("status", "expected"), [(404, "skipped"), (412, "retry"), (200, "done"), (201, "dead"), (400, "dead")]
)
def test_on_status_comes_before_expect_and_the_defaults(status: int, expected: str) -> None:
    plan = plan_of("""
    - name: write
      connection: target
      method: POST
      path: /things
      expect: [200]
      on_status: {"404": skip, "412": retry}
    """)
    with FakeServer() as server:
        server.route("POST", "/things", Reply.json({}, status))
        assert run(plan, server).status == expected


def test_a_reason_that_cannot_be_written_still_says_what_happened() -> None:
    plan = plan_of("""
    - name: find
      connection: target
      method: GET
      path: /query
      outcomes:
        - when: body.totalSize == `0`
          outcome: skip
          reason: "none for {{ body.records[0].Id }}"
    """)
    with FakeServer() as server:
        server.route("GET", "/query", Reply.json({"totalSize": 0, "records": []}))
        result = run(plan, server)
        assert result.status == "skipped"
        assert result.reason.startswith("step `find` (tests/outcomes.yaml:12): target answered 200: ")
        assert "the reason could not be written" in result.reason
