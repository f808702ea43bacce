"""Check a mapping's GraphQL query: syntax, operations, variables, and fields when an API schema is given.

Syntax and variables are checked by `graphql_syntax` (no graphql-core import: `wlmap validate` must start
fast). graphql-core is imported only to read a schema file given with `--graphql-schema`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapper.language.graphql import syntax


@dataclass(frozen=True)
class GraphQLProblem:
    message: str
    offset: int  # character offset in the query text
    width: int = 1
    hint: str | None = None
    variable: str | None = None  # set when the place to fix is the `variables:` entry of that name
    severity: str = "error"


@dataclass
class Checked:
    problems: list[GraphQLProblem] = field(default_factory=list)
    selection: dict[str, Any] | None = None  # response key → syntax.Node


class SchemaFileError(Exception):
    """A `--graphql-schema` file that cannot be read; the message says why in plain words."""


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    line = min(max(line, 1), len(lines))
    return sum(len(x) + 1 for x in lines[: line - 1]) + max(column - 1, 0)


def check(text: str, operation: str | None, given: Iterable[str], api_schema: Any = None) -> Checked:
    result = Checked()
    try:
        document = syntax.parse(text)
    except syntax.GraphQLSyntaxError as exc:
        result.problems.append(
            GraphQLProblem(f"GraphQL: {exc.message}", _offset(text, exc.line, exc.column), exc.length)
        )
        return result
    for error in syntax.check(document):
        result.problems.append(
            GraphQLProblem(f"GraphQL: {error.message}", _offset(text, error.line, error.column), error.length)
        )
    operations = document.operations
    chosen = None
    if not operations:
        result.problems.append(
            GraphQLProblem(
                "GraphQL: the query text has no operation",
                0,
                1,
                "write e.g. `query ($id: ID!) { node(id: $id) { id } }`",
            )
        )
        return result
    if operation is not None:
        chosen = next((op for op in operations if op.name == operation), None)
        if chosen is None:
            names = ", ".join(op.name for op in operations if op.name) or "none has a name"
            result.problems.append(
                GraphQLProblem(f"GraphQL: there is no operation `{operation}` (operations: {names})", 0)
            )
            return result
    elif len(operations) > 1:
        result.problems.append(
            GraphQLProblem(
                "GraphQL: the query text holds several operations",
                _offset(text, operations[1].line, operations[1].column),
                len(operations[1].kind),
                "say which one to run with `operation:`",
            )
        )
        return result
    else:
        chosen = operations[0]
    if chosen.kind != "query":
        result.problems.append(
            GraphQLProblem(
                f"GraphQL: a mapping's query must read data, not run a {chosen.kind}",
                _offset(text, chosen.line, chosen.column),
                len(chosen.kind),
                "start the text with `query`",
            )
        )
    declared = {v.name: v for v in chosen.variables}
    given = set(given)
    for variable in chosen.variables:
        if variable.required and variable.name not in given:
            result.problems.append(
                GraphQLProblem(
                    f"GraphQL: the query needs `${variable.name}` but `variables:` does not give it",
                    _offset(text, variable.line, variable.column),
                    len(variable.name) + 1,
                    _variable_hint(variable.name, variable.type),
                )
            )
    used = {use.name for use in syntax.variable_uses(document, chosen)}
    for name in sorted(given - set(declared) - used):  # a used one is reported where it is used: declare it
        result.problems.append(
            GraphQLProblem(
                f"GraphQL: `{name}` is given under `variables:` but the query declares no `${name}`",
                0,
                1,
                f"declare it, e.g. `query (${name}: ID!)`, or remove it",
                variable=name,
            )
        )
    result.selection = syntax.selection_tree(document, chosen)
    if api_schema is not None:
        result.problems.extend(_against_schema(text, api_schema))
    return result


def _variable_hint(name: str, type_: str) -> str:
    if type_.rstrip("!") == "ID":
        return f'add it under `variables:`, e.g. `{name}: "{{{{ event.resource_id }}}}"`'
    plain = type_.rstrip("!")
    return f"add `{name}: ...` under `variables:`, or give it a default in the query (`${name}: {plain} = ...`)"


def _against_schema(text: str, api_schema: Any) -> list[GraphQLProblem]:
    from graphql import parse, validate  # only with --graphql-schema: graphql-core is slow to import

    problems = []
    for error in validate(api_schema, parse(text)):
        location = error.locations[0] if error.locations else None
        offset = _offset(text, location.line, location.column) if location else 0
        message, hint, width = _plain_schema_error(error.message)
        problems.append(GraphQLProblem(f"GraphQL schema: {message}", offset, width, hint))
    return problems


def _did_you_mean(message: str) -> str | None:
    """graphql-core's own suggestion ("Did you mean 'a' or 'b'?") in our words."""
    match = re.search(r"Did you mean (.*)\?$", message)
    if not match:
        return None
    names = re.findall(r"'([^']+)'", match.group(1))
    if not names or "inline fragment" in match.group(1):
        return None
    return "did you mean " + " or ".join(f"`{n}`" for n in names) + "?"


def _plain_schema_error(message: str) -> tuple[str, str | None, int]:
    """graphql-core's validation message → (plain message, hint, caret width)."""
    if match := re.match(r"Cannot query field '([^']+)' on type '([^']+)'", message):
        field_name, type_name = match.groups()
        hint = _did_you_mean(message)
        if hint is None and "inline fragment" in message:
            fragment = re.search(r"inline fragment on '([^']+)'", message)
            hint = f"select it inside `... on {fragment.group(1)} {{ }}`" if fragment else None
        return f"`{type_name}` has no field `{field_name}`", hint, len(field_name)
    if match := re.match(r"Unknown argument '([^']+)' on field '([^']+)'", message):
        return (
            f"field `{match.group(2)}` has no argument `{match.group(1)}`",
            _did_you_mean(message),
            len(match.group(1)),
        )
    if match := re.match(r"Unknown type '([^']+)'", message):
        return f"the API has no type `{match.group(1)}`", _did_you_mean(message), len(match.group(1))
    if match := re.match(r"Field '([^']+)' argument '([^']+)' of type '([^']+)' is required", message):
        return (
            f"field `{match.group(1)}` needs the argument `{match.group(2)}` ({match.group(3)})",
            None,
            len(match.group(1)),
        )
    if match := re.match(r"Field '([^']+)' of type '([^']+)' must have a selection of subfields", message):
        return (
            f"`{match.group(1)}` is an object (`{match.group(2)}`): say which of its fields to read",
            f"write e.g. `{match.group(1)} {{ id }}`",
            len(match.group(1)),
        )
    if match := re.match(r"Field '([^']+)' must not have a selection since type '([^']+)' has no subfields", message):
        return (
            f"`{match.group(1)}` is a plain value (`{match.group(2)}`) and has no fields to select",
            f"remove the `{{ ... }}` after `{match.group(1)}`",
            len(match.group(1)),
        )
    if match := re.match(r"Variable '\$([^']+)' of type '([^']+)' used in position expecting type '([^']+)'", message):
        return (
            f"`${match.group(1)}` is declared as `{match.group(2)}` but is used where `{match.group(3)}` is expected",
            f"declare it as `${match.group(1)}: {match.group(3)}`",
            len(match.group(1)) + 1,
        )
    return message, None, 1


def load_schema(path: Path) -> Any:
    """Read an API schema: SDL text (`schema.graphql`) or an introspection result (JSON)."""
    from graphql import GraphQLError, build_client_schema, build_schema

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaFileError(f"{path}: cannot read the GraphQL schema: {exc.strerror}") from None
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text)
            data = data.get("data", data) if isinstance(data, dict) else data
            return build_client_schema(data)
        return build_schema(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(
            f"{path}:{exc.lineno}:{exc.colno}: the introspection JSON cannot be read: {exc.msg}"
        ) from None
    except GraphQLError as exc:
        where = f":{exc.locations[0].line}:{exc.locations[0].column}" if exc.locations else ""
        raise SchemaFileError(f"{path}{where}: the GraphQL schema cannot be read: {exc.message}") from None
    except (TypeError, KeyError, ValueError) as exc:
        raise SchemaFileError(f"{path}: this is not a GraphQL introspection result ({exc})") from None
