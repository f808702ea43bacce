"""A mapping's tests file (`<name>.tests.yaml` beside it) → its test cases, every problem located.

A case gives the webhook, the GraphQL response, stub responses per step and env, and says what must happen
(`expect`, checked by `expectations`). Instead of writing `externalData` by hand, a case may give the deep
link's parameters (`link:`): the link is built and read back, and what WorkLink would keep is put where the
mapping reads `externalData` (`rehearse.links`). `event`, `headers`, `graphql` and a stub's `body_file` may name a JSON
file, relative to the tests file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mapper.errors import Location, MappingError, Problem, Problems
from mapper.language import schema, source
from mapper.rehearse.stubs import StubResponse

SCHEMA_FILE = Path(__file__).with_name("tests.schema.json")  # also schemas/tests.schema.json, for editors
AUXILIARY = ("oauth2-token", "csrf-fetch")  # sign-in requests a case may answer under `auth:`
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
    auth: dict[str, list[StubResponse]] | None = None  # answers of sign-in requests (AUXILIARY), by kind
    clock: str | None = None  # what `now()` returns while the case runs (ISO 8601)
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
    """Read a tests file; MappingError with every located problem when it is not right.

    Its shape is checked against tests.schema.json first (every problem, located, in a tests file's words);
    then each case's files are read."""
    document, problems = source.read(path.read_bytes(), str(path))
    found = Problems()
    for problem in problems:
        found.add(problem)
    if document is None or found.has_errors:
        raise MappingError(found.items)
    data = document.data
    for problem in schema.check(document, SCHEMA_FILE) if data is not None else []:
        found.add(_in_tests_words(problem, document))
    if data is None:
        found.add(document.problem((), "a tests file needs `cases:`, a list of test cases"))
    if found.has_errors:
        raise MappingError(found.items)
    env = _strings(data.get("env"))
    cases = []
    for index, spec in enumerate(data["cases"]):
        case = _case(document, path, index, spec, env, data.get("clock"), found)
        if case is not None:
            cases.append(case)
    if found.has_errors:
        raise MappingError(found.items)
    return cases, env


def _case(
    document: source.Document,
    path: Path,
    index: int,
    spec: dict[str, Any],
    env: dict[str, str],
    clock: str | None,
    found: Problems,
) -> Case | None:
    """One case (its shape already checked), or None when a file it names cannot be read (said in `found`)."""
    path_in: source.Path = ("cases", index)
    name = spec.get("name") or f"case {index + 1}"
    read = _read(document, path, path_in, spec, name, found)
    if read is None:
        return None
    event, graphql, responses, auth = read["event"], read["graphql"], read["responses"], read["auth"]
    headers = read["headers"] or {}
    if not isinstance(headers, dict):
        found.add(document.problem((*path_in, "headers"), f"test case `{name}`: `headers` must be key: value pairs"))
        return None
    try:
        sequence = _sequence(document, path, path_in, spec.get("events"), found)
        at = None if spec.get("at") is None else moment(spec["at"])
        since = None if spec.get("since") is None else moment(spec["since"])
    except (OSError, ValueError) as exc:
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
    link = spec.get("link")
    return Case(
        name,
        document.location(path_in),
        event,
        {str(k).lower(): str(v) for k, v in headers.items()},
        graphql,
        responses,
        spec.get("expect") or {},
        {**env, **_strings(spec.get("env"))},
        None if link is None else {str(k): _text(v) for k, v in link.items()},
        auth or None,
        spec.get("clock", clock),
        sequence,
        at,
        since,
    )


def _read(
    document: source.Document, path: Path, path_in: source.Path, spec: dict[str, Any], name: str, found: Problems
) -> dict[str, Any] | None:
    """The case's event, headers, GraphQL answer, responses and auth answers, each read from its file or inline."""
    read: dict[str, Any] = {}
    for key in ("event", "headers", "graphql", "responses", "auth"):
        try:
            if key in ("responses", "auth"):
                read[key] = {str(k): _answers(path, given) for k, given in (spec.get(key) or {}).items()}
            else:
                read[key] = _file_or_inline(path, spec.get(key))
        except (OSError, ValueError) as exc:
            found.add(document.problem((*path_in, key), f"test case `{name}`: {exc}"))
    return read if len(read) == 5 else None


def _sequence(
    document: source.Document, base: Path, path_in: source.Path, given: Any, found: Problems
) -> list[tuple[float, Any, dict[str, str], Any]] | None:
    """`events:` (its shape checked by the schema): each event with its time (one second after the one before,
    from 2024-05-01T00:00:00Z, unless it says `at:`), headers and the GraphQL answer its query gets."""
    if given is None:
        return None
    sequence: list[tuple[float, Any, dict[str, str], Any]] = []
    clock = moment(START) - 1
    for index, entry in enumerate(given):
        clock = moment(entry["at"]) if entry.get("at") is not None else clock + 1
        headers = _file_or_inline(base, entry.get("headers")) or {}
        if not isinstance(headers, dict):
            found.add(document.problem((*path_in, "events", index, "headers"), "`headers` must be key: value pairs"))
            continue
        body = _file_or_inline(base, entry["event"])
        event = body if isinstance(body, bytes | str) else json.dumps(body).encode()
        graphql = _file_or_inline(base, entry.get("graphql"))
        sequence.append((clock, event, {str(k).lower(): str(v) for k, v in headers.items()}, graphql))
    return sequence


def _in_tests_words(problem: Problem, document: source.Document) -> Problem:
    """A schema problem said as a tests file's: which case, expectation or request check a key is unknown in."""
    words, message = problem.path, problem.message
    unknown = re.fullmatch(r"unknown key `(.*)`", message)
    if unknown:
        key, where = unknown.group(1), words[:-1]
        if not where:
            message = f"unknown key `{key}` in a tests file"
        elif len(where) == 1 and where[0].startswith("case"):
            message = f"unknown key `{key}` in a test case"
        elif where[1:] == ("expect",):
            message = f"unknown expectation `{key}`"
        elif where[1:3] == ("expect", "requests"):
            message = f"unknown request check `{key}`"
        elif where[1:3] == ("expect", "buckets"):
            message = f"unknown bucket expectation `{key}`"
        elif where[1:2] == ("events",):
            message = f"unknown key `{key}` in an event"
        elif where[1:] == ("auth",):
            message = f"`{key}` is not a sign-in request a case can answer"
        elif where[1:2] == ("responses",):
            message = f"unknown key `{key}` in a stub response"
        return replace(problem, message=message)
    if message.endswith("needs `event`") and len(words) == 1:
        named = re.fullmatch(r'case "(.*)"', words[0])
        name = named.group(1) if named else words[0]
        return replace(problem, message=f"test case `{name}` needs an `event` (a file under samples/ or inline)")
    invalid = re.fullmatch(r"`(.*)` is not a valid (clock|headers|graphql)", message, re.DOTALL)
    if invalid and invalid.group(2) == "clock":
        hint = "an ISO 8601 time with its zone, e.g. 2024-05-01T10:00:00Z"
        return replace(problem, message=f"`{invalid.group(1)}` is not a time for `clock`", hint=hint)
    if invalid:
        hint = "a JSON file (its name ends in .json, relative to the tests file), or the value itself, inline"
        return replace(problem, message=f"`{invalid.group(2)}`: `{invalid.group(1)}` is not a JSON file", hint=hint)
    if not words:
        hint = "a tests file has `cases:` (a list of test cases), and may have `env:` and `clock:`"
        return replace(problem, message=message.replace("the mapping", "the tests file"), hint=hint)
    return problem


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
            folder = "the tests file's folder" if base.parent == Path() else str(base.parent)
            raise ValueError(f"file `{value}` does not exist (paths are relative to {folder})") from None
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"file `{value}` is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            ) from None
    return value


def _answers(base: Path, given: Any) -> list[StubResponse]:
    """One answer or a list of them (each request takes the next; the last answers the rest)."""
    return [_stub(base, one) for one in (given if isinstance(given, list) else [given])]


def _stub(base: Path, given: dict[str, Any]) -> StubResponse:
    body = _file_or_inline(base, given["body_file"]) if "body_file" in given else given.get("body")
    headers = {str(k).lower(): str(v) for k, v in (given.get("headers") or {}).items()}
    return StubResponse(int(given.get("status", 200)), headers, body)
