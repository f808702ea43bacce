"""Check a mapping's shape against schemas/mapping.schema.json and say what is wrong in plain words."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path as FilePath
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped, unused-ignore]

from mapper.errors import Problem, did_you_mean
from mapper.language.source import Document, Path

SCHEMA_FILE = FilePath(__file__).with_name("mapping.schema.json")

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a set of `key: value` pairs",
    "array": "a list",
    "null": "empty",
}
AUTH_KINDS = ("basic", "bearer", "api_key", "oauth2")
OUTCOMES = ("success", "skip", "retry", "fail")
# Words people write for an outcome, and the outcome they mean.
_OUTCOME_WORDS = {
    "ignore": "skip",
    "ignored": "skip",
    "drop": "skip",
    "ok": "success",
    "done": "success",
    "succeed": "success",
    "error": "fail",
    "failed": "fail",
    "dead": "fail",
    "park": "fail",
    "again": "retry",
    "later": "retry",
}
_DURATION_PATTERN = "^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$"


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator(against: FilePath = SCHEMA_FILE) -> Any:
    return Draft202012Validator(json.loads(against.read_text(encoding="utf-8")))


def check(document: Document, against: FilePath = SCHEMA_FILE) -> list[Problem]:
    """Every schema problem of the document, each located and worded for a person.

    `against`: another JSON Schema file (the tests file's, `rehearse`); the words are a mapping's, so its caller
    rewords what it must."""
    if document.data is None:
        return []  # an empty file: the compiler says so in one line
    problems: list[Problem] = []
    seen: set[tuple[int, int, str]] = set()
    for error in _validator(against).iter_errors(document.data):
        if document.is_refused(tuple(error.absolute_path)):
            continue
        for problem in _explain(document, error):
            key = (problem.location.line, problem.location.column, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return _without_echoes(problems)


def _without_echoes(problems: list[Problem]) -> list[Problem]:
    """A misspelt required key is reported once, as the unknown key with its "did you mean"."""
    suggested = {(p.path[:-1], p.hint) for p in problems if p.message.startswith("unknown key")}
    return [
        p
        for p in problems
        if not (
            (match := re.fullmatch(r".* needs `([^`]+)`", p.message))
            and (p.path, f"did you mean `{match.group(1)}`?") in suggested
        )
    ]


def describe(document: Document, path: Path) -> tuple[str, ...]:
    """The breadcrumb of a path in words: ('steps', 0, 'json') → ('step "update-incident"', 'json')."""
    return document.describe(path)


def _problem(document: Document, path: Path, message: str, hint: str | None = None, key: bool = False) -> Problem:
    location = document.location(path, key)
    return Problem(
        location, message, path=describe(document, path), hint=hint, source_line=document.line_text(location.line)
    )


def _name(path: Path) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return "this value"


def _subject(path: Path) -> str:
    """How a message names the thing at `path`: `timeout`, the step, the mapping."""
    if not path:
        return "the mapping"
    if isinstance(path[-1], int):
        return "the step" if path[:-1] == ("steps",) else f"item {path[-1] + 1} of `{_name(path)}`"
    return f"`{path[-1]}`"


def _explain(document: Document, error: ValidationError) -> Iterator[Problem]:
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    if kind in ("propertyNames", "pattern") and "propertyNames" in error.relative_schema_path:
        yield _bad_key(document, path, str(error.instance), error.validator_value)
        return
    explain = _EXPLAIN.get(kind)
    if explain is None:
        yield _problem(document, path, f"`{_name(path)}`: {error.message}")
        return
    yield from explain(document, error, path, _name(path))


Explain = Callable[[Document, ValidationError, Path, str], Iterator[Problem]]


def _unknown_keys(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    value = error.instance
    if not isinstance(value, dict):
        yield _problem(document, path, f"`{name}`: {error.message}")
        return
    allowed = sorted(error.schema.get("properties", {}))
    for extra in sorted(set(value) - set(allowed)):
        hint = did_you_mean(extra, allowed) or (f"allowed here: {', '.join(allowed)}" if allowed else None)
        yield _problem(document, (*path, extra), f"unknown key `{extra}`", hint, key=True)


def _missing_keys(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    for key in re.findall(r"'([^']+)' is a required property", error.message):
        yield _problem(document, path, f"{_subject(path)} needs `{key}`", _REQUIRED_HINTS.get(key), key=bool(path))


def _bad_key(document: Document, path: Path, bad: str, pattern: Any) -> Problem:
    """A key that does not match the schema's `propertyNames`: a status under `on_status`, or a name."""
    if path[-1:] == ("on_status",):
        hint = "use a status such as `404`, or a class such as `4xx`"
        return _problem(document, (*path, bad), f"`{bad}` is not an HTTP status", hint, key=True)
    message = f"`{bad}` cannot be used as a name here"
    return _problem(document, (*path, bad), message, _pattern_hint(pattern, bad), key=True)


def _wrong_type(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    words = " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in expected)
    subject = "the file" if not path else _subject(path)
    message = f"{subject} must be {words}, not {_describe_value(error.instance)}"
    yield _problem(document, path, message, _type_hint(error.instance, expected, path))


def _not_one_of(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    value = error.instance
    options = [str(o) for o in error.validator_value]
    hint = None
    if isinstance(value, str):
        upper = [o for o in options if o.lower() == value.lower()]
        close = upper or difflib.get_close_matches(value, options, n=1, cutoff=0.5)
        if not close and options == list(OUTCOMES):
            close = [_OUTCOME_WORDS[value.lower()]] if value.lower() in _OUTCOME_WORDS else []
        hint = f"did you mean `{close[0]}`?" if close else None
        if upper and name == "method":
            hint = f"write it in capitals: `{upper[0]}`"
    if options == list(OUTCOMES):
        message = f"`{value}` is not an outcome; use one of: {', '.join(options)}"
    else:
        message = f"`{value}` is not allowed for `{name}`; use one of: {', '.join(options)}"
    yield _problem(document, path, message, hint)


def _not_the_constant(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    hint = "this version of wlmap reads mappings of format version 1" if name == "version" else None
    yield _problem(document, path, f"`{name}` must be {json.dumps(error.validator_value)}", hint)


def _pattern(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    value = error.instance
    what = "step name" if len(path) == 3 and path[0] == "steps" and path[2] == "name" else name
    what = "mapping name" if path == ("name",) else what
    yield _problem(document, path, f"`{value}` is not a valid {what}", _pattern_hint(error.validator_value, value))


def _empty(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    yield _problem(document, path, f"{_subject(path)} is empty", "add at least one entry")


_LIMITS = {
    "minimum": ("at least", ""),
    "maximum": ("at most", ""),
    "exclusiveMinimum": ("more than", ""),
    "maxLength": ("at most", " characters"),
    "maxItems": ("at most", " entries"),
}


def _out_of_bounds(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    limit, unit = _LIMITS[error.validator]
    yield _problem(document, path, f"{_subject(path)} must be {limit} {error.validator_value}{unit}")


def _explain_alternatives(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    value = error.instance
    if name == "auth":
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in AUTH_KINDS:
            chosen = next(iter(value))
            for sub in error.context or []:
                if tuple(sub.relative_path)[:1] == (chosen,):
                    yield from _explain(document, sub)
            return
        if isinstance(value, dict):
            for key in sorted(value):
                if key not in AUTH_KINDS:
                    close = difflib.get_close_matches(key, AUTH_KINDS, n=1, cutoff=0.5)
                    hint: str | None = (
                        f"did you mean `{close[0]}`?" if close else f"use one of: none, {', '.join(AUTH_KINDS)}"
                    )
                    yield _problem(document, (*path, key), f"unknown kind of auth `{key}`", hint, key=True)
            if len(value) > 1 and all(k in AUTH_KINDS for k in value):
                yield _problem(
                    document, path, "`auth` takes one kind of sign-in", f"keep one of: {', '.join(sorted(value))}"
                )
            if not value:
                yield _problem(document, path, "`auth` is empty", f"use one of: none, {', '.join(AUTH_KINDS)}")
            return
        hint = None
        if isinstance(value, str):
            close = difflib.get_close_matches(value, AUTH_KINDS, n=1, cutoff=0.5)
            if close:
                hint = f"write `{close[0]}:` as a key, with its settings indented below it"
        yield _problem(
            document,
            path,
            f"`auth` must be `none` or one of {', '.join(AUTH_KINDS)}, not {_describe_value(value)}",
            hint,
        )
        return
    if any((sub.schema or {}).get("pattern") == _DURATION_PATTERN for sub in error.context or []):
        yield _problem(
            document,
            path,
            f"{_subject(path)} must be a duration such as 30s, 5m or 2h, or a number of seconds, "
            f"not {_describe_value(value)}",
            _duration_hint(value),
        )
        return
    yield _problem(document, path, f"`{name}` is not valid: {error.message}")


_EXPLAIN: dict[str, Explain] = {
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "type": _wrong_type,
    "enum": _not_one_of,
    "const": _not_the_constant,
    "pattern": _pattern,
    "minItems": _empty,
    "minProperties": _empty,
    **dict.fromkeys(_LIMITS, _out_of_bounds),
    "anyOf": _explain_alternatives,
    "oneOf": _explain_alternatives,
}


def _duration_hint(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return "a duration cannot be negative"
    if not isinstance(value, str):
        return None
    if re.fullmatch(r"[0-9]+\.[0-9]*0", value):
        return (
            f"`{value}` was kept as text because its trailing zero would be lost as a number; "
            f"write {float(value):g} or {float(value):g}s"
        )
    match = re.fullmatch(
        r"\s*([0-9.]+)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)\s*", value, re.IGNORECASE
    )
    if match:
        unit = match.group(2).lower()
        short = "ms" if unit.startswith("mil") or unit == "ms" else unit[0]
        return f"write `{match.group(1)}{short}` (a number and one of ms, s, m, h, d, with no space)"
    return "write a number and one of ms, s, m, h, d, e.g. `30s`"


_REQUIRED_HINTS = {
    "steps": "add at least one step under `steps:`",
    "trigger": "say which webhooks to act on, e.g. `trigger: {events: [updated], resource_types: [CallSession]}`",
    "connections": "name the systems this mapping talks to under `connections:`",
    "version": "add `version: 1` at the top",
    "graphql": "put the query text under `graphql: |`",
    "name": "give it a short name, e.g. `name: update-order`",
    "method": "add e.g. `method: POST`",
    "connection": "name one of the systems under `connections:`",
    "token_url": 'the address tokens are issued at, e.g. `token_url: "{{ env.OAUTH_TOKEN_URL }}"`',
    "client_id": 'e.g. `client_id: "{{ env.OAUTH_CLIENT_ID }}"`',
    "client_secret": 'take it from the environment, e.g. `client_secret: "{{ env.OAUTH_CLIENT_SECRET }}"`',
    "username": 'e.g. `username: "{{ env.TARGET_USER }}"`',
    "password": 'take it from the environment, e.g. `password: "{{ env.TARGET_PASSWORD }}"`',
    "token": 'take it from the environment, e.g. `token: "{{ env.TARGET_TOKEN }}"`',
    "value": 'take it from the environment, e.g. `value: "{{ env.TARGET_API_KEY }}"`',
    "when": "a JMESPath condition on the answer, e.g. when: body.totalSize == `0`",
    "outcome": "one of: success, skip, retry, fail",
}


def _pattern_hint(pattern: Any, value: Any = None) -> str | None:
    if pattern == "^[a-z0-9][a-z0-9_-]*$":
        slug = re.sub(r"[^a-z0-9_-]+", "-", str(value).lower()).strip("-_")
        example = f", e.g. `{slug}`" if slug and re.fullmatch(pattern, slug) else ""
        return f"use lower-case letters, digits, `-` and `_`{example}"
    if pattern == "^[A-Za-z][A-Za-z0-9_-]*$":
        return "use letters, digits, `-` and `_`, starting with a letter"
    if pattern == "^[A-Za-z_][A-Za-z0-9_]*$":
        return "use letters, digits and `_`, starting with a letter (no `-`, no spaces)"
    return None


def _describe_value(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text `{shown}`"
    if isinstance(value, list):
        return "a list"
    return "a set of `key: value` pairs"


_BOOLEAN_WORDS = {"yes", "no", "on", "off", "y", "n"}


def _type_hint(value: Any, expected: list[str], path: Path) -> str | None:
    if not path and value is not None:
        return "a mapping starts with `version: 1`, `name: ...`, `trigger:` and so on, each on its own line"
    if isinstance(value, str) and "boolean" in expected and value.lower() in _BOOLEAN_WORDS:
        return "write true or false (YAML 1.1 words like yes/no/on/off are kept as text here)"
    numeric = "number" in expected or "integer" in expected
    if isinstance(value, str) and numeric and re.fullmatch(r"[-+]?0[0-9]+", value):
        return f"a leading zero keeps `{value}` as text; write {int(value)}"
    if isinstance(value, str) and numeric and re.fullmatch(r"[-+]?[0-9._eE+-]+", value):
        return "this was read as text to keep it exactly as typed; write the number without leading or trailing zeros"
    if "string" in expected and isinstance(value, int | float | bool):
        return "put it in quotes to keep it as text"
    if "string" in expected and isinstance(value, dict) and len(value) == 1 and next(iter(value.values())) is None:
        return "a value starting with `{` must be quoted: '{{ ... }}'"
    if "array" in expected and isinstance(value, str | int | float | bool):
        shown = value if isinstance(value, str) else json.dumps(value)
        return f"write a list: [{shown}]"
    return None
