"""`wlmap test`: run a mapping's test cases (its sibling `<name>.tests.yaml`) against stubbed systems.

A case gives the webhook, the GraphQL response and stub responses per step, and says what must happen:
the outcome, the requests sent (method, URL, headers subset, body equal or contains), captured values.
Nothing is sent over the network. Coverage says which trigger conditions, steps and branches no case
exercised.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mapper.errors import Location, MappingError, Problem, Problems, did_you_mean
from mapper.events import normalise
from mapper.language import source
from mapper.language.plan import Plan
from mapper.rehearse.stubs import AUXILIARY, StubResponse, StubTransport
from mapper.run.matching import match
from mapper.run.outcome import RunResult
from mapper.run.runner import Runner

CASE_KEYS = {"name", "event", "headers", "graphql", "responses", "expect", "env"}
EXPECT_KEYS = {"matched", "outcome", "reason_contains", "requests", "captured", "not_sent"}
REQUEST_KEYS = {
    "step",
    "method",
    "url",
    "url_contains",
    "path",
    "params",
    "headers",
    "json",
    "json_contains",
    "form",
    "body_contains",
}


@dataclass
class Case:
    name: str
    location: Location
    event: Any
    headers: dict[str, str]
    graphql: Any
    responses: dict[str, list[StubResponse]]
    expect: dict[str, Any]
    env: dict[str, str]


@dataclass
class CaseResult:
    case: Case
    failures: list[str] = field(default_factory=list)
    result: RunResult | None = None
    steps_sent: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Suite:
    plan: Plan
    file: Path
    results: list[CaseResult] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)


def tests_file_for(mapping: Path) -> Path:
    return mapping.with_name(mapping.name.removesuffix(mapping.suffix) + ".tests.yaml")


def load_cases(path: Path) -> tuple[list[Case], dict[str, str]]:
    """Read a tests file; MappingError with every located problem when it is not right."""
    document, problems = source.read(path.read_bytes(), str(path))
    found = Problems()
    for problem in problems:
        found.add(problem)
    if document is None or found.has_errors:
        raise MappingError(found.items)
    data = document.data
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise MappingError([document.problem((), "a tests file needs `cases:`, a list of test cases")])
    for key in data:
        if key not in ("cases", "env", "mapping"):
            found.add(
                document.problem(
                    (key,), f"unknown key `{key}` in a tests file", "allowed: cases, env, mapping", key=True
                )
            )
    env = {str(k): str(v) for k, v in (data.get("env") or {}).items()} if isinstance(data.get("env"), dict) else {}
    cases = []
    for index, spec in enumerate(data["cases"]):
        path_in: source.Path = ("cases", index)
        if not isinstance(spec, dict):
            found.add(document.problem(path_in, "a test case is a set of `key: value` pairs"))
            continue
        for key in spec:
            if key not in CASE_KEYS:
                hint = did_you_mean(str(key), CASE_KEYS)
                found.add(
                    document.problem(
                        (*path_in, key),
                        f"unknown key `{key}` in a test case",
                        hint or f"allowed: {', '.join(sorted(CASE_KEYS))}",
                        key=True,
                    )
                )
        given_expect = spec.get("expect")
        expect: dict[str, Any] = given_expect if isinstance(given_expect, dict) else {}
        for key in expect:
            if key not in EXPECT_KEYS:
                found.add(
                    document.problem(
                        (*path_in, "expect", key),
                        f"unknown expectation `{key}`",
                        f"allowed: {', '.join(sorted(EXPECT_KEYS))}",
                        key=True,
                    )
                )
        for n, request in enumerate(expect.get("requests") or []):
            for key in request if isinstance(request, dict) else []:
                if key not in REQUEST_KEYS:
                    found.add(
                        document.problem(
                            (*path_in, "expect", "requests", n, key),
                            f"unknown request check `{key}`",
                            f"allowed: {', '.join(sorted(REQUEST_KEYS))}",
                            key=True,
                        )
                    )
        given_name = spec.get("name")
        name = given_name if isinstance(given_name, str) else f"case {index + 1}"
        try:
            event = _file_or_inline(path, spec.get("event"))
            headers = _file_or_inline(path, spec.get("headers")) or {}
            graphql = _file_or_inline(path, spec.get("graphql"))
            responses = {
                str(step): [_stub(path, r) for r in (given if isinstance(given, list) else [given])]
                for step, given in (spec.get("responses") or {}).items()
            }
        except (OSError, ValueError) as exc:
            found.add(document.problem(path_in, f"test case `{name}`: {exc}"))
            continue
        if event is None:
            found.add(
                document.problem(path_in, f"test case `{name}` needs an `event` (a file under samples/ or inline)")
            )
            continue
        if not isinstance(headers, dict):
            found.add(
                document.problem((*path_in, "headers"), f"test case `{name}`: `headers` must be key: value pairs")
            )
            continue
        case_env = (
            {str(k): str(v) for k, v in (spec.get("env") or {}).items()} if isinstance(spec.get("env"), dict) else {}
        )
        cases.append(
            Case(
                name,
                document.location(path_in),
                event,
                {str(k).lower(): str(v) for k, v in headers.items()},
                graphql,
                responses,
                expect,
                {**env, **case_env},
            )
        )
    if found.has_errors:
        raise MappingError(found.items)
    return cases, env


def _file_or_inline(base: Path, value: Any) -> Any:
    if isinstance(value, str) and value.endswith(".json"):
        path = (base.parent / value).resolve()
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"file `{value}` does not exist (paths are relative to {base.parent})") from None
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"file `{value}` is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            ) from None
    return value


def _stub(base: Path, given: Any) -> StubResponse:
    if not isinstance(given, dict):
        raise ValueError("a stub response is `{status, headers, body}` (or `body_file`)")
    body = _file_or_inline(base, given["body_file"]) if "body_file" in given else given.get("body")
    status = given.get("status", 200)
    if not isinstance(status, int):
        raise ValueError(f"a stub status must be a number, not {status!r}")
    headers = {str(k).lower(): str(v) for k, v in (given.get("headers") or {}).items()}
    return StubResponse(status, headers, body)


async def run_case(plan: Plan, case: Case) -> CaseResult:
    outcome = CaseResult(case)
    body = case.event if isinstance(case.event, bytes | str) else json.dumps(case.event).encode()
    event = normalise(body, case.headers)
    matched, why = match(plan, event)
    expected_match = case.expect.get("matched", True)
    if matched != expected_match:
        outcome.failures.append(f"expected the trigger {'to match' if expected_match else 'not to match'}, but: {why}")
        return outcome
    if not matched:
        return outcome
    transport = StubTransport(case.graphql, case.responses)
    runner = Runner(case.env, transport=transport)
    try:
        result = await runner.run(plan, event, idempotency_key=f"test|{case.name}")
    finally:
        await runner.aclose()
    outcome.result = result
    outcome.steps_sent = [s.step for s in transport.sent if s.step and s.step not in ("query", *AUXILIARY)]
    _check(case, result, transport, outcome.failures)
    return outcome


def _check(case: Case, result: RunResult, transport: StubTransport, failures: list[str]) -> None:
    expect = case.expect
    wanted = expect.get("outcome")
    if wanted is not None and wanted != result.status:
        failures.append(f"outcome: expected `{wanted}`, got `{result.status}`: {result.reason}")
    elif wanted is None and result.status in ("dead", "retry"):
        failures.append(f"the run failed ({result.status}): {result.reason}")
    if "reason_contains" in expect and str(expect["reason_contains"]) not in result.reason:
        failures.append(f"reason: expected it to contain {expect['reason_contains']!r}, got {result.reason!r}")
    sent = [s for s in transport.sent if s.step != "query"]
    for index, wanted_request in enumerate(expect.get("requests") or []):
        step = wanted_request.get("step")
        candidates = [s for s in sent if step is None or s.step == step]
        if not candidates:
            failures.append(f"request {index + 1}: step `{step}` sent no request")
            continue
        problems_by_candidate = [(_compare_request(wanted_request, c), c) for c in candidates]
        best = min(problems_by_candidate, key=lambda pc: len(pc[0]))
        if best[0]:
            failures.append(f"request {index + 1} (step `{best[1].step}`):\n" + "\n".join("  " + p for p in best[0]))
        else:
            sent.remove(best[1])
    for step in expect.get("not_sent") or []:
        if any(s.step == step for s in transport.sent):
            failures.append(f"step `{step}` sent a request, but the case says it must not")
    captured = expect.get("captured") or {}
    stages = {s.get("name"): s for s in result.trace.get("stages", []) if s.get("stage") == "step"}
    for step, values in captured.items():
        got = (stages.get(step) or {}).get("captured") or {}
        for name, value in (values or {}).items():
            if got.get(name) != value:
                failures.append(
                    f"captured `steps.{step}.{name}`: expected {json.dumps(value)}, got {json.dumps(got.get(name))}"
                )


def _compare_request(wanted: Mapping[str, Any], sent: Any) -> list[str]:
    request = sent.request
    problems = []
    if "method" in wanted and str(wanted["method"]).upper() != request.method:
        problems.append(f"method: expected {wanted['method']}, sent {request.method}")
    url = str(request.url)
    if "url" in wanted and not _same_url(str(wanted["url"]), request.url):
        problems.append(f"url: expected {wanted['url']}\n       sent     {url}")
    if "url_contains" in wanted and str(wanted["url_contains"]) not in url:
        problems.append(f"url: expected it to contain {wanted['url_contains']!r}, sent {url}")
    if "path" in wanted and wanted["path"] != urlsplit(url).path:
        problems.append(f"path: expected {wanted['path']}, sent {urlsplit(url).path}")
    for name, value in (wanted.get("params") or {}).items():
        if request.url.params.get(name) != str(value):
            problems.append(f"param `{name}`: expected {value!r}, sent {request.url.params.get(name)!r}")
    for name, value in (wanted.get("headers") or {}).items():
        if request.headers.get(name) != str(value):
            problems.append(f"header `{name}`: expected {value!r}, sent {request.headers.get(name)!r}")
    body = request.content.decode("utf-8", errors="replace")
    if "json" in wanted or "json_contains" in wanted:
        try:
            sent_json = json.loads(body) if body else None
        except json.JSONDecodeError:
            problems.append(f"body: expected JSON, sent {body[:200]!r}")
        else:
            if "json" in wanted and sent_json != wanted["json"]:
                problems.append("json body differs:\n" + _diff(wanted["json"], sent_json))
            if "json_contains" in wanted:
                missing = _missing(wanted["json_contains"], sent_json)
                if missing:
                    problems.append(
                        "json body does not contain what was expected:\n" + "\n".join("    " + m for m in missing)
                    )
    if "form" in wanted:
        from urllib.parse import parse_qsl

        form = dict(parse_qsl(body))
        for name, value in wanted["form"].items():
            if form.get(name) != str(value):
                problems.append(f"form field `{name}`: expected {value!r}, sent {form.get(name)!r}")
    if "body_contains" in wanted and str(wanted["body_contains"]) not in body:
        problems.append(f"body: expected it to contain {wanted['body_contains']!r}")
    return problems


def _same_url(wanted: str, sent: Any) -> bool:
    """Same scheme, host, port and path, and the same query parameters once decoded (`,` and `%2C` agree)."""
    from urllib.parse import parse_qsl

    expected = urlsplit(wanted)
    actual = urlsplit(str(sent))
    return (expected.scheme, expected.hostname, expected.port, expected.path) == (
        actual.scheme,
        actual.hostname,
        actual.port,
        actual.path,
    ) and parse_qsl(expected.query, keep_blank_values=True) == parse_qsl(actual.query, keep_blank_values=True)


def _missing(wanted: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(wanted, dict):
        if not isinstance(got, dict):
            return [f"{path or 'body'}: expected an object, sent {json.dumps(got)}"]
        found = []
        for key, value in wanted.items():
            if key not in got:
                found.append(f"{path}{key}: missing (expected {json.dumps(value)})")
            else:
                found.extend(_missing(value, got[key], f"{path}{key}."))
        return found
    if isinstance(wanted, list) and isinstance(got, list) and len(wanted) == len(got):
        found = []
        for index, (item, sent) in enumerate(zip(wanted, got, strict=True)):
            found.extend(_missing(item, sent, f"{path}[{index}]."))
        return found
    if wanted != got or type(wanted) is not type(got):
        return [f"{path.rstrip('.')}: expected {json.dumps(wanted)}, sent {json.dumps(got)}"]
    return []


def _diff(wanted: Any, got: Any) -> str:
    a = json.dumps(wanted, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    b = json.dumps(got, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join("    " + line for line in difflib.unified_diff(a, b, "expected", "sent", lineterm="", n=2))


def coverage(plan: Plan, results: list[CaseResult]) -> list[str]:
    """What no case exercised: trigger outcomes, skip_unless both ways, each step sent, when both ways, on_status."""
    gaps = []
    traces = [r.result.trace for r in results if r.result is not None]
    stages = [stage for trace in traces for stage in trace.get("stages", [])]
    if not any(r.case.expect.get("matched") is False for r in results):
        gaps.append("no case checks an event the trigger ignores")
    if plan.skip_unless is not None:
        seen = {s.get("passed") for s in stages if s.get("stage") == "skip_unless"}
        for value, words in ((True, "passes"), (False, "skips")):
            if value not in seen:
                gaps.append(f"no case where skip_unless {words}")
    for step in plan.steps:
        runs = [s for s in stages if s.get("stage") == "step" and s.get("name") == step.name]
        if not any(s.get("ran") for s in runs):
            gaps.append(f"step `{step.name}` never sent a request")
        if step.when is not None and not any(s.get("ran") is False for s in runs):
            gaps.append(f"step `{step.name}`: no case where its `when` is false")
        outcomes = {s.get("outcome") for s in runs}
        for status, outcome in step.on_status.items():
            statuses = {s.get("status") for s in runs}
            if not any(str(x) == status or (status.endswith("xx") and str(x)[:1] == status[0]) for x in statuses if x):
                gaps.append(f"step `{step.name}`: on_status {status} ({outcome}) never exercised")
        if runs and "success" in outcomes and not any(o in outcomes for o in ("fail", "retry", "skip")):
            gaps.append(f"step `{step.name}`: no case where it fails")
    if not any(r.result is not None and r.result.status in ("dead", "retry") for r in results):
        gaps.append("no case where the run fails")
    return gaps


def run_suite(plan: Plan, tests_file: Path) -> Suite:
    cases, _ = load_cases(tests_file)
    suite = Suite(plan, tests_file)

    async def all_cases() -> None:
        for case in cases:
            suite.results.append(await run_case(plan, case))

    asyncio.run(all_cases())
    suite.uncovered = coverage(plan, suite.results)
    return suite


def problem_for_missing_tests(mapping: Path) -> Problem:
    return Problem(
        Location(str(mapping)),
        f"no test cases: expected {tests_file_for(mapping).name} next to the mapping",
        severity="warning",
    )
