"""Check a mapping's shape against schemas/mapping.schema.json and say what is wrong in plain words."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path as FilePath
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from mapper.errors import Problem
from mapper.source import Document, Path

SCHEMA_FILE = FilePath(__file__).with_name("mapping.schema.json")

_TYPE_WORDS = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "object": "a set of `key: value` pairs", "array": "a list", "null": "empty"}


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def check(document: Document) -> list[Problem]:
    """Every schema problem of the document, each located and worded for a person."""
    problems: list[Problem] = []
    seen: set[tuple[Path, str]] = set()
    for error in _validator().iter_errors(document.data):
        for problem in _explain(document, error):
            key = (problem.location.line, problem.location.column, problem.message)
            if (tuple(error.absolute_path), problem.message) in seen or key in {(p.location.line, p.location.column, p.message) for p in problems}:
                continue
            seen.add((tuple(error.absolute_path), problem.message))
            problems.append(problem)
    return problems


def describe(document: Document, path: Path) -> tuple[str, ...]:
    """The breadcrumb of a path in words: ('steps', 0, 'json') → ('step "update-incident"', 'json')."""
    return document.describe(path)


def _problem(document: Document, path: Path, message: str, hint: str | None = None, key: bool = False) -> Problem:
    problem = document.problem(path, message, hint, key=key)
    return Problem(problem.location, message, path=describe(document, path), hint=hint, source_line=problem.source_line)


def _name(path: Path) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return "this value"


def _explain(document: Document, error: ValidationError) -> Iterator[Problem]:
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    name = _name(path)
    value = error.instance
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for extra in sorted(set(value) - set(allowed)):
            close = difflib.get_close_matches(extra, allowed, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else f"allowed here: {', '.join(allowed)}" if allowed else None
            yield _problem(document, (*path, extra), f"unknown key `{extra}`", hint, key=True)
        return
    if kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        for key in missing:
            where = f"`{name}`" if path else "the mapping"
            yield _problem(document, path, f"{where} needs `{key}`", _REQUIRED_HINTS.get(key), key=bool(path))
        return
    if kind == "propertyNames":
        bad = value if isinstance(value, str) else str(value)
        yield _problem(document, path, f"`{bad}` cannot be used as a name here", "use letters, digits and `_`, starting with a letter")
        return
    if kind == "pattern" and error.parent is None and len(error.relative_schema_path) >= 2 and "propertyNames" in error.relative_schema_path:
        yield _problem(document, (*path, value), f"`{value}` cannot be used as a name here", _pattern_hint(error.validator_value), key=True)
        return
    if kind == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in expected)
        yield _problem(document, path, f"`{name}` must be {words}, not {_describe_value(value)}", _type_hint(value, expected))
        return
    if kind == "enum":
        options = [str(o) for o in error.validator_value]
        hint = None
        if isinstance(value, str):
            upper = [o for o in options if o.lower() == value.lower()]
            close = upper or difflib.get_close_matches(value, options, n=1, cutoff=0.5)
            hint = f"did you mean `{close[0]}`?" if close else None
        yield _problem(document, path, f"`{value}` is not allowed for `{name}`; use one of: {', '.join(options)}", hint)
        return
    if kind == "const":
        yield _problem(document, path, f"`{name}` must be {json.dumps(error.validator_value)}")
        return
    if kind == "pattern":
        yield _problem(document, path, f"`{value}` is not a valid {name}", _pattern_hint(error.validator_value))
        return
    if kind in ("minItems", "minProperties"):
        yield _problem(document, path, f"`{name}` is empty", "add at least one entry")
        return
    if kind in ("minimum", "maximum", "exclusiveMinimum", "maxLength", "maxItems"):
        limit = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than", "maxLength": "at most",
                 "maxItems": "at most"}[kind]
        unit = " characters" if kind == "maxLength" else " entries" if kind == "maxItems" else ""
        yield _problem(document, path, f"`{name}` must be {limit} {error.validator_value}{unit}")
        return
    if kind in ("anyOf", "oneOf"):
        yield from _explain_alternatives(document, error, path, name)
        return
    yield _problem(document, path, f"`{name}`: {error.message}")


def _explain_alternatives(document: Document, error: ValidationError, path: Path, name: str) -> Iterator[Problem]:
    value = error.instance
    if name == "auth" or (path and path[-1] == "auth"):
        kinds = ["basic", "bearer", "api_key", "oauth2"]
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in kinds:
            chosen = next(iter(value))
            for sub in error.context or []:
                if tuple(sub.relative_path)[:1] == (chosen,) or (sub.validator == "required" and sub.instance is value):
                    if sub.validator == "required" and sub.instance is value:
                        continue
                    yield from _explain(document, sub)
            return
        if isinstance(value, dict):
            for key in sorted(value):
                if key not in kinds:
                    close = difflib.get_close_matches(key, kinds, n=1, cutoff=0.5)
                    hint = f"did you mean `{close[0]}`?" if close else f"use one of: none, {', '.join(kinds)}"
                    yield _problem(document, (*path, key), f"unknown kind of auth `{key}`", hint, key=True)
            if len(value) > 1 and all(k in kinds for k in value):
                yield _problem(document, path, "`auth` takes one kind of sign-in", f"keep one of: {', '.join(sorted(value))}")
            if not value:
                yield _problem(document, path, "`auth` is empty", f"use one of: none, {', '.join(kinds)}")
            return
        yield _problem(document, path, f"`auth` must be `none` or one of {', '.join(kinds)}, not {_describe_value(value)}")
        return
    if any("pattern" in (sub.schema or {}) and "ms|s|m|h|d" in str(sub.schema.get("pattern")) for sub in error.context or []):
        yield _problem(document, path, f"`{name}` must be a duration such as 30s, 5m or 2h, or a number of seconds, not {_describe_value(value)}")
        return
    yield _problem(document, path, f"`{name}` is not valid: {error.message}")


_REQUIRED_HINTS = {
    "steps": "add at least one step under `steps:`",
    "trigger": "say which webhooks to act on, e.g. `trigger: {events: [updated], resource_types: [CallSession]}`",
    "connections": "name the systems this mapping talks to under `connections:`",
    "version": "add `version: 1` at the top",
    "graphql": "put the query text under `graphql: |`",
}


def _pattern_hint(pattern: Any) -> str | None:
    if pattern == "^[a-z0-9][a-z0-9_-]*$":
        return "use lower-case letters, digits, `-` and `_`"
    if pattern == "^[A-Za-z][A-Za-z0-9_-]*$":
        return "use letters, digits, `-` and `_`, starting with a letter"
    if pattern == "^[A-Za-z_][A-Za-z0-9_]*$":
        return "use letters, digits and `_`, starting with a letter"
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


def _type_hint(value: Any, expected: list[str]) -> str | None:
    if isinstance(value, str) and "boolean" in expected and value.lower() in _BOOLEAN_WORDS:
        return "write true or false (YAML words like yes/no/on/off are kept as text)"
    if isinstance(value, str) and ("number" in expected or "integer" in expected) and re.fullmatch(r"[-+]?[0-9._eE+-]+", value):
        return "this was read as text to keep it exactly as typed; write the number without leading or trailing zeros"
    if "string" in expected and isinstance(value, int | float | bool):
        return "put it in quotes to keep it as text"
    if "string" in expected and isinstance(value, dict) and len(value) == 1 and next(iter(value.values())) is None:
        return "a value starting with `{` must be quoted: '{{ ... }}'"
    if "array" in expected and isinstance(value, str):
        return f"write a list: [{value}]"
    return None
