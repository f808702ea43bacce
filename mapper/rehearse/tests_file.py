"""A mapping's tests file (`<name>.tests.yaml` beside it) → its test cases, every problem located.

A case gives the webhook, the GraphQL response, stub responses per step and env, and says what must happen
(`expect`, checked by `expectations`). Instead of writing `externalData` by hand, a case may give the deep
link's parameters (`link:`): the link is built and read back, and what WorkLink would keep is put where the
mapping reads `externalData` (`rehearse.links`). `event`, `headers`, `graphql` and a stub's `body_file` may name a JSON
file, relative to the tests file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mapper.errors import Location, MappingError, Problem, Problems, did_you_mean
from mapper.language import source
from mapper.rehearse.stubs import StubResponse

START = "2024-05-01T00:00:00Z"  # the time of a sequence's first event unless it says `at:`


def moment(value: Any) -> float:
    """An ISO 8601 time (UTC unless it says otherwise) as seconds since the epoch; ValueError if it is none."""
    from datetime import UTC, datetime

    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"`{text}` is not an ISO 8601 time, e.g. 2024-05-01T02:00:00Z") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


CASE_KEYS = {"name", "event", "headers", "graphql", "responses", "expect", "env", "link", "events", "at", "since"}
EXPECT_KEYS = {"matched", "outcome", "reason_contains", "requests", "captured", "not_sent", "buckets"}
EVENT_KEYS = {"event", "headers", "graphql", "at"}  # one event of a sequence (`events:`)
# What a case says about one closed bucket of a collecting mapping: its group, items, why it closed, its run.
BUCKET_KEYS = {"group", "items", "closed_by", "outcome", "reason_contains", "requests", "captured", "not_sent"}
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
    link: dict[str, str] | None = None  # the deep link's parameters (and target id), by name
    # A sequence of events (collecting mappings): (time, body, headers, GraphQL answer), in order.
    events: list[tuple[float, Any, dict[str, str], Any]] | None = None
    at: float | None = None  # the clock at the end (collecting), or the due time (scheduled)
    since: float | None = None  # a scheduled run's `since` (default: the due time before `at`)

    @property
    def body(self) -> bytes | str:
        """The webhook as it is delivered: a text as it is, parsed JSON (a file or inline YAML) as JSON."""
        return self.event if isinstance(self.event, bytes | str) else json.dumps(self.event).encode()


def tests_file_for(mapping: Path) -> Path:
    return mapping.with_name(mapping.name.removesuffix(mapping.suffix) + ".tests.yaml")


def problem_for_missing_tests(mapping: Path) -> Problem:
    return Problem(
        Location(str(mapping)),
        f"no test cases: expected {tests_file_for(mapping).name} next to the mapping",
        severity="warning",
    )


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
    env = _strings(data.get("env"))
    cases = []
    for index, spec in enumerate(data["cases"]):
        case = _case(document, path, index, spec, env, found)
        if case is not None:
            cases.append(case)
    if found.has_errors:
        raise MappingError(found.items)
    return cases, env


def _case(
    document: source.Document, path: Path, index: int, spec: Any, env: dict[str, str], found: Problems
) -> Case | None:
    """One case, or None when it cannot be run (the problems are in `found`)."""
    path_in: source.Path = ("cases", index)
    if not isinstance(spec, dict):
        found.add(document.problem(path_in, "a test case is a set of `key: value` pairs"))
        return None
    given_expect = spec.get("expect")
    expect: dict[str, Any] = given_expect if isinstance(given_expect, dict) else {}
    _unknown_keys(document, path_in, spec, expect, found)
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
        return None
    try:
        sequence = _sequence(document, path, path_in, spec.get("events"), found)
        at = None if spec.get("at") is None else moment(spec["at"])
        since = None if spec.get("since") is None else moment(spec["since"])
    except ValueError as exc:
        found.add(document.problem(path_in, f"test case `{name}`: {exc}"))
        return None
    if event is None and sequence is None and at is None:
        found.add(
            document.problem(
                path_in,
                f"test case `{name}` needs an `event` (a file under samples/ or inline), `events` (a sequence, "
                "for a collecting mapping) or `at` (the due time, for a scheduled mapping)",
            )
        )
        return None
    if not isinstance(headers, dict):
        found.add(document.problem((*path_in, "headers"), f"test case `{name}`: `headers` must be key: value pairs"))
        return None
    link = spec.get("link")
    if link is not None and not (isinstance(link, dict) and all(_is_scalar(v) for v in link.values())):
        found.add(
            document.problem(
                (*path_in, "link"), f"test case `{name}`: `link` must be `name: value` pairs (the link's parameters)"
            )
        )
        return None
    return Case(
        name,
        document.location(path_in),
        event,
        {str(k).lower(): str(v) for k, v in headers.items()},
        graphql,
        responses,
        expect,
        {**env, **_strings(spec.get("env"))},
        None if link is None else {str(k): _text(v) for k, v in link.items()},
        sequence,
        at,
        since,
    )


def _unknown_keys(
    document: source.Document, path_in: source.Path, spec: dict[Any, Any], expect: dict[str, Any], found: Problems
) -> None:
    """Keys a case, its `expect` or a request check does not know, each with the keys allowed there."""
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
    for n, bucket in enumerate(expect.get("buckets") or []):
        for key in bucket if isinstance(bucket, dict) else []:
            if key not in BUCKET_KEYS:
                found.add(
                    document.problem(
                        (*path_in, "expect", "buckets", n, key),
                        f"unknown bucket expectation `{key}`",
                        f"allowed: {', '.join(sorted(BUCKET_KEYS))}",
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


def _sequence(
    document: source.Document, base: Path, path_in: source.Path, given: Any, found: Problems
) -> list[tuple[float, Any, dict[str, str], Any]] | None:
    """`events:`: each event with its time (one second after the one before, from 2024-05-01T00:00:00Z, unless
    it says `at:`), headers and the GraphQL answer its query gets."""
    if given is None:
        return None
    if not isinstance(given, list) or not given:
        found.add(document.problem((*path_in, "events"), "`events` is a list of events, each `event:` and maybe `at:`"))
        return None
    sequence: list[tuple[float, Any, dict[str, str], Any]] = []
    clock = moment(START) - 1
    for index, entry in enumerate(given):
        at_path: source.Path = (*path_in, "events", index)
        if not isinstance(entry, dict) or "event" not in entry:
            found.add(document.problem(at_path, "an entry of `events` needs `event:` (a file or inline JSON)"))
            continue
        for key in entry:
            if key not in EVENT_KEYS:
                hint = f"allowed: {', '.join(sorted(EVENT_KEYS))}"
                found.add(document.problem((*at_path, key), f"unknown key `{key}` in an event", hint, key=True))
        clock = moment(entry["at"]) if entry.get("at") is not None else clock + 1
        headers = _file_or_inline(base, entry.get("headers")) or {}
        if not isinstance(headers, dict):
            found.add(document.problem((*at_path, "headers"), "`headers` must be key: value pairs"))
            continue
        body = _file_or_inline(base, entry["event"])
        event = body if isinstance(body, bytes | str) else json.dumps(body).encode()
        graphql = _file_or_inline(base, entry.get("graphql"))
        sequence.append((clock, event, {str(k).lower(): str(v) for k, v in headers.items()}, graphql))
    return sequence


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _text(value: str | int | float | bool) -> str:
    """A YAML scalar as a link carries it: `true` → "true", `7211` → "7211"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _strings(given: Any) -> dict[str, str]:
    """An `env:` block as text names and values; anything but key: value pairs counts as none."""
    return {str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {}


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
