"""What a test case expects, compared with what its run did: outcome, reason, requests sent, captured values.

Each difference is one failure in words; a request check is compared with every request its step sent, and
the closest one is reported.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from mapper.rehearse.stubs import Sent
from mapper.rehearse.tests_file import Case
from mapper.run.outcome import RunResult


def check(case: Case, result: RunResult, sent: list[Sent]) -> list[str]:
    """Every way the run (its result, the requests that reached the stubs) differs from the case's `expect`."""
    expect = case.expect
    failures: list[str] = []
    wanted = expect.get("outcome")
    if wanted is not None and wanted != result.status:
        failures.append(f"outcome: expected `{wanted}`, got `{result.status}`: {result.reason}")
    elif wanted is None and result.status in ("dead", "retry"):
        failures.append(f"the run failed ({result.status}): {result.reason}")
    if "reason_contains" in expect and str(expect["reason_contains"]) not in result.reason:
        failures.append(f"reason: expected it to contain {expect['reason_contains']!r}, got {result.reason!r}")
    failures += _requests(expect.get("requests") or [], [s for s in sent if s.step != "query"])
    for step in expect.get("not_sent") or []:
        if any(s.step == step for s in sent):
            failures.append(f"step `{step}` sent a request, but the case says it must not")
    failures += _captured(expect.get("captured") or {}, result)
    return failures


def _requests(wanted: list[Mapping[str, Any]], sent: list[Sent]) -> list[str]:
    """Each request check against the requests of its step; a request that satisfies one is used up."""
    failures = []
    for index, wanted_request in enumerate(wanted):
        step = wanted_request.get("step")
        candidates = [s for s in sent if step is None or s.step == step]
        if not candidates:
            failures.append(f"request {index + 1}: step `{step}` sent no request")
            continue
        problems_by_candidate = [(compare_request(wanted_request, c.request), c) for c in candidates]
        best = min(problems_by_candidate, key=lambda pc: len(pc[0]))
        if best[0]:
            failures.append(f"request {index + 1} (step `{best[1].step}`):\n" + "\n".join("  " + p for p in best[0]))
        else:
            sent.remove(best[1])
    return failures


def _captured(captured: Mapping[str, Any], result: RunResult) -> list[str]:
    failures = []
    stages = {s.get("name"): s for s in result.trace.get("stages", []) if s.get("stage") == "step"}
    for step, values in captured.items():
        got = (stages.get(step) or {}).get("captured") or {}
        for name, value in (values or {}).items():
            if got.get(name) != value:
                failures.append(
                    f"captured `steps.{step}.{name}`: expected {json.dumps(value)}, got {json.dumps(got.get(name))}"
                )
    return failures


def compare_request(wanted: Mapping[str, Any], request: httpx.Request) -> list[str]:
    """How a sent request differs from one request check (method, URL, params, headers, body)."""
    problems = []
    if "method" in wanted and str(wanted["method"]).upper() != request.method:
        problems.append(f"method: expected {wanted['method']}, sent {request.method}")
    problems += _compare_url(wanted, request.url)
    for name, value in (wanted.get("headers") or {}).items():
        if request.headers.get(name) != str(value):
            problems.append(f"header `{name}`: expected {value!r}, sent {request.headers.get(name)!r}")
    problems += _compare_body(wanted, request.content.decode("utf-8", errors="replace"))
    return problems


def _compare_url(wanted: Mapping[str, Any], sent: httpx.URL) -> list[str]:
    problems = []
    url = str(sent)
    if "url" in wanted and not _same_url(str(wanted["url"]), sent):
        problems.append(f"url: expected {wanted['url']}\n       sent     {url}")
    if "url_contains" in wanted and str(wanted["url_contains"]) not in url:
        problems.append(f"url: expected it to contain {wanted['url_contains']!r}, sent {url}")
    if "path" in wanted and wanted["path"] != urlsplit(url).path:
        problems.append(f"path: expected {wanted['path']}, sent {urlsplit(url).path}")
    for name, value in (wanted.get("params") or {}).items():
        if sent.params.get(name) != str(value):
            problems.append(f"param `{name}`: expected {value!r}, sent {sent.params.get(name)!r}")
    return problems


def _compare_body(wanted: Mapping[str, Any], body: str) -> list[str]:
    problems = []
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
        form = dict(parse_qsl(body))
        for name, value in wanted["form"].items():
            if form.get(name) != str(value):
                problems.append(f"form field `{name}`: expected {value!r}, sent {form.get(name)!r}")
    if "body_contains" in wanted and str(wanted["body_contains"]) not in body:
        problems.append(f"body: expected it to contain {wanted['body_contains']!r}")
    return problems


def _same_url(wanted: str, sent: httpx.URL) -> bool:
    """Same scheme, host, port and path, and the same query parameters once decoded (`,` and `%2C` agree)."""
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
