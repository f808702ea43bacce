"""What `wlmap run` runs a mapping with: a saved event and headers, and for a dry run the saved answers.

They come from files given on the command line, or from one case of the mapping's tests file (`--case`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapper.language.plan import Plan
from mapper.links import LinkError
from mapper.rehearse import tests_file
from mapper.rehearse.links import with_link
from mapper.rehearse.stubs import StubResponse


class InputError(Exception):
    """A file or argument of the command is unusable; the message says which and why."""


@dataclass
class Inputs:
    body: bytes | str
    headers: dict[str, str]
    graphql: Any = None
    responses: dict[str, list[StubResponse]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    auth: dict[str, list[StubResponse]] = field(default_factory=dict)  # a case's answers of sign-in requests
    clock: str | None = None  # a case's `clock:`: what `now()` returns


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
            answer = StubResponse(
                int(given["status"]),
                {str(k).lower(): str(v) for k, v in (given.get("headers") or {}).items()},
                given.get("body"),
            )
        else:
            answer = StubResponse(200, {}, given)
        inputs.responses.setdefault(step, []).append(answer)
    return inputs


def from_case(mapping: Path, name: str, plan: Plan | None = None) -> Inputs:
    """The event, headers, GraphQL answer, stub responses and env of a test case (its name or number).

    With the `plan`, a case's `link:` parameters are put where the mapping reads externalData.
    """
    case = case_named(mapping, name, plan)
    return Inputs(
        case.body,
        dict(case.headers),
        case.graphql,
        {k: list(v) for k, v in case.responses.items()},
        dict(case.env),
        {k: list(v) for k, v in (case.auth or {}).items()},
        case.clock,
    )


def as_case(inputs: Inputs, event: Path) -> tests_file.Case:
    """Files given on the command line as a test case of one event (for collecting mappings)."""
    from mapper.errors import Location

    return tests_file.Case(
        str(event),
        Location(str(event)),
        inputs.body,
        inputs.headers,
        inputs.graphql,
        inputs.responses,
        {},
        inputs.env,
        auth=inputs.auth or None,
        clock=inputs.clock,
    )


def case_named(mapping: Path, name: str, plan: Plan | None = None) -> tests_file.Case:
    """A test case of the mapping's tests file, by name or number (InputError when there is none)."""
    found = tests_file.tests_file_for(mapping)
    if not found.exists():
        raise InputError(f"{mapping}: no test cases ({found.name} does not exist)")
    cases, _ = tests_file.load_cases(found)
    chosen = [case for case in cases if case.name == name] or [
        case for case in cases if name.isdigit() and cases.index(case) == int(name) - 1
    ]
    if not chosen:
        names = "\n  ".join(case.name for case in cases)
        raise InputError(f"{found}: no case named `{name}`; the cases are:\n  {names}")
    case = chosen[0]
    if plan is not None:
        try:
            case = with_link(plan, case)
        except LinkError as exc:
            raise InputError(f"{found}: case `{case.name}`: link: {exc}") from None
    return case
