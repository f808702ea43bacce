"""Run one mapping once for one saved event: live, or as a dry run answered from saved responses.

Behind `wlmap run MAPPING --event FILE [--dry-run]` and `wlmap run MAPPING --case NAME`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapper import events
from mapper.language.plan import Plan
from mapper.rehearse import cases as testing
from mapper.rehearse import stubs
from mapper.run import matching
from mapper.run.outcome import RunResult
from mapper.run.runner import Runner


class InputError(Exception):
    """A file or argument of the command is unusable; the message says which and why."""


@dataclass
class Inputs:
    body: bytes
    headers: dict[str, str]
    graphql: Any = None
    responses: dict[str, list[stubs.StubResponse]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    event: events.Event
    matched: bool
    why: str
    result: RunResult | None = None
    unstubbed: list[str] = field(default_factory=list)


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: the {what} is not valid JSON: {exc.msg}") from None


def from_files(event: Path, headers: Path | None, graphql: Path | None, responses: list[str]) -> Inputs:
    try:
        body = event.read_bytes()
    except OSError as exc:
        raise InputError(f"{event}: cannot read the event: {exc.strerror}") from None
    raw_headers = read_json(headers, "headers") if headers else {}
    if not isinstance(raw_headers, dict):
        raise InputError(f"{headers}: the headers file must hold a JSON object")
    inputs = Inputs(body, {str(k): str(v) for k, v in raw_headers.items()})
    inputs.graphql = read_json(graphql, "GraphQL response") if graphql else None
    for spec in responses:
        step, sep, file = spec.partition("=")
        if not sep or not step:
            raise InputError(f"--response {spec}: write STEP=FILE")
        given = read_json(Path(file), f"response for step `{step}`")
        if isinstance(given, dict) and "status" in given and set(given) <= {"status", "headers", "body"}:
            answer = stubs.StubResponse(
                int(given["status"]),
                {str(k).lower(): str(v) for k, v in (given.get("headers") or {}).items()},
                given.get("body"),
            )
        else:
            answer = stubs.StubResponse(200, {}, given)
        inputs.responses.setdefault(step, []).append(answer)
    return inputs


def from_case(mapping: Path, name: str) -> Inputs:
    """The event, headers, GraphQL answer, stub responses and env of a test case of the mapping."""
    tests_file = testing.tests_file_for(mapping)
    if not tests_file.exists():
        raise InputError(f"{mapping}: no test cases ({tests_file.name} does not exist)")
    cases, _ = testing.load_cases(tests_file)
    chosen = [case for case in cases if case.name == name] or [
        case for case in cases if name.isdigit() and cases.index(case) == int(name) - 1
    ]
    if not chosen:
        names = "\n  ".join(case.name for case in cases)
        raise InputError(f"{tests_file}: no case named `{name}`; the cases are:\n  {names}")
    case = chosen[0]
    body = case.event if isinstance(case.event, bytes) else json.dumps(case.event).encode()
    return Inputs(
        body, dict(case.headers), case.graphql, {k: list(v) for k, v in case.responses.items()}, dict(case.env)
    )


def stand_in_env(plan: Plan, env: Mapping[str, str]) -> dict[str, str]:
    """For a dry run: every variable the mapping reads, with a visible stand-in where it is not set."""
    filled = dict(env)
    for name in plan.env_names:
        if name not in filled:
            filled[name] = f"https://{name.lower().replace('_', '-')}.example" if name.endswith("URL") else f"<{name}>"
    return filled


def run(plan: Plan, inputs: Inputs, env: Mapping[str, str], dry_run: bool) -> Outcome:
    event = events.normalise(inputs.body, inputs.headers)
    matched, why = matching.match(plan, event)
    outcome = Outcome(event, matched, why)
    if not matched:
        return outcome
    transport = stubs.StubTransport(inputs.graphql, inputs.responses) if dry_run else None

    async def once() -> RunResult:
        runner = Runner(env, transport=transport)
        try:
            return await runner.run(plan, event, attempt=1)
        finally:
            await runner.aclose()

    outcome.result = asyncio.run(once())
    outcome.unstubbed = list(transport.unstubbed) if transport else []
    return outcome
