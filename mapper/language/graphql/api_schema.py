"""A query against the API's schema (`--graphql-schema`): graphql-core's other rules, their messages in our words."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    build_client_schema,
    build_schema,
    get_named_type,
    specified_rules,
    validate,
)
from graphql.language import DocumentNode, FieldNode, IntValueNode, Visitor, visit

from mapper.language.graphql import rules
from mapper.language.graphql.problems import GraphQLProblem, SchemaFileError

_SCHEMA_FREE = frozenset(rule for rule, _ in rules.RULES)


def check(document: DocumentNode, api_schema: GraphQLSchema, *, scope_api: bool = False) -> list[GraphQLProblem]:
    """The problems only the schema shows (the schema-free ones are `rules.check`'s).

    `scope_api`: the document is the Scope AR query, whose connections need `first` or `last`."""
    problems = []
    for error in validate(api_schema, document, [r for r in specified_rules if r not in _SCHEMA_FREE]):
        message, hint, width = _plain(error.message)
        offset = next(iter(error.positions or ()), 0)
        problems.append(GraphQLProblem(f"GraphQL schema: {message}", offset, width, hint))
    if scope_api and not problems:  # on a document the schema accepts: field types are known
        problems.extend(_paged_connections(document, api_schema))
    return problems


# Scope AR: "`first`/`last` of 1–100 is required on every connection" (the Scope AR GraphQL API, connections):
# a query without either is refused by the server, on every event.
_PAGE = range(1, 101)


def _paged_connections(document: DocumentNode, api_schema: GraphQLSchema) -> list[GraphQLProblem]:
    info = TypeInfo(api_schema)
    problems: list[GraphQLProblem] = []

    class Connections(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            field = info.get_field_def()
            if field is None or not {"first", "last"} <= set(field.args):
                return
            if not get_named_type(field.type).name.endswith("Connection"):
                return
            given = {argument.name.value: argument.value for argument in node.arguments or ()}
            start = node.loc.start if node.loc is not None else 0
            name = node.name.value
            if "first" not in given and "last" not in given:
                problems.append(
                    GraphQLProblem(
                        f"GraphQL: `{name}` is a connection: Scope AR needs `first` or `last` (1 to 100) on it",
                        start,
                        len(name),
                        f"write e.g. `{name}(first: 100) {{ nodes {{ ... }} }}`",
                    )
                )
            for key in ("first", "last"):
                value = given.get(key)
                if isinstance(value, IntValueNode) and int(value.value) not in _PAGE:
                    problems.append(
                        GraphQLProblem(
                            f"GraphQL: `{key}` on `{name}` must be 1 to 100, not {value.value}",
                            value.loc.start if value.loc is not None else start,
                            len(value.value),
                        )
                    )

    visit(document, TypeInfoVisitor(info, Connections()))
    return problems


def load(path: Path) -> GraphQLSchema:
    """Read an API schema: SDL text (`schema.graphql`) or an introspection result (JSON)."""
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


def _did_you_mean(message: str) -> str | None:
    """graphql-core's own suggestion ("Did you mean 'a' or 'b'?") in our words."""
    match = re.search(r"Did you mean (.*)\?$", message)
    if not match:
        return None
    names = re.findall(r"'([^']+)'", match.group(1))
    if not names or "inline fragment" in match.group(1):
        return None
    return "did you mean " + " or ".join(f"`{n}`" for n in names) + "?"


def _plain(message: str) -> tuple[str, str | None, int]:
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
