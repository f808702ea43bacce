"""Just enough GraphQL for the fakes: read a request's operation, and give back only the fields it selected.

graphql-core parses the document (a query the fake cannot read is answered with an error, as a server would);
the answer is the fake's saved object cut down to the selection, aliases and inline fragments included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)


@dataclass(frozen=True)
class Field:
    """One top-level field the operation asks for, with its arguments' values."""

    name: str
    key: str  # its alias, or its name
    arguments: Mapping[str, Any]
    selection: SelectionSetNode | None


@dataclass(frozen=True)
class Operation:
    kind: str  # query or mutation
    fields: tuple[Field, ...]
    fragments: Mapping[str, FragmentDefinitionNode]


class QueryError(Exception):
    """The request is not a GraphQL operation the fake can read; the message is what goes into `errors`."""


def read(request: Any) -> Operation:
    """The operation of a GraphQL request body (`{query, variables, operationName}`)."""
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        raise QueryError("a GraphQL request is a JSON object with a `query`")
    try:
        document = parse(request["query"])
    except GraphQLError as exc:
        raise QueryError(f"Syntax Error: {exc.message}") from None
    variables = request.get("variables") or {}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    named = request.get("operationName")
    chosen = [o for o in operations if named is None or (o.name is not None and o.name.value == named)]
    if len(chosen) != 1:
        raise QueryError("the request must name exactly one operation")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    fields = tuple(
        Field(
            node.name.value,
            (node.alias or node.name).value,
            {arg.name.value: value_from_ast_untyped(arg.value, variables) for arg in node.arguments or ()},
            node.selection_set,
        )
        for node in chosen[0].selection_set.selections
        if isinstance(node, FieldNode)
    )
    return Operation(chosen[0].operation.value, fields, fragments)


def project(value: Any, selection: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]) -> Any:
    """`value` with only the selected fields (under their aliases); fragments apply to their own type."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [project(item, selection, fragments) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for node in selection.selections:
        if isinstance(node, FieldNode):
            key = (node.alias or node.name).value
            out[key] = project(value.get(node.name.value), node.selection_set, fragments)
        elif isinstance(node, InlineFragmentNode):
            if node.type_condition is None or _is_a(value, node.type_condition.name.value):
                out.update(project(value, node.selection_set, fragments))
        elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments:
            fragment = fragments[node.name.value]
            if _is_a(value, fragment.type_condition.name.value):
                out.update(project(value, fragment.selection_set, fragments))
    return out


def _is_a(value: Mapping[str, Any], type_name: str) -> bool:
    """An object without `__typename` takes every fragment (the saved answer did not say its type)."""
    return value.get("__typename") in (None, type_name)
