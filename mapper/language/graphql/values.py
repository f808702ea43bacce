"""Values a mapping writes for a document's `$variables`, checked against the types the document declares.

A value written out in the YAML (`minutes: 12.5`, `state: DONE`) is the same for every event, so a wrong type
is found when the mapping is checked; a template's value is known only when the mapping runs. Without an API
schema only the built-in types (Int, Float, String, Boolean, ID, lists and `!`) can be checked; with one,
enums and input objects too (graphql-core's `validate_input_value`, as a server would).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import GraphQLError, GraphQLSchema, print_ast, specified_scalar_types
from graphql.language import ListTypeNode, NamedTypeNode, NonNullTypeNode, OperationDefinitionNode, TypeNode
from graphql.type import GraphQLInputType, GraphQLList, GraphQLNonNull, is_input_type
from graphql.utilities import type_from_ast, validate_input_value

from mapper.language.graphql.problems import GraphQLProblem


def check(
    chosen: OperationDefinitionNode, literals: Mapping[str, Any], api_schema: GraphQLSchema | None
) -> Iterator[GraphQLProblem]:
    """Each written-out value that its variable's declared type refuses, reported at its `variables:` entry."""
    for definition in chosen.variable_definitions or ():
        name = definition.variable.name.value
        if name not in literals:
            continue
        wanted = _input_type(definition.type, api_schema)
        if wanted is None:
            continue  # a type only the API's schema knows
        problem = _refused(literals[name], wanted)
        if problem is not None:
            declared = print_ast(definition.type)
            yield GraphQLProblem(
                f"GraphQL: `${name}` is declared as `{declared}`, which {problem}",
                0,
                1,
                "give a value of that type, or fill it in with a template",
                variable=name,
            )


def _input_type(node: TypeNode, api_schema: GraphQLSchema | None) -> GraphQLInputType | None:
    if api_schema is not None:
        found = type_from_ast(api_schema, node)
        return found if found is not None and is_input_type(found) else None
    if isinstance(node, NonNullTypeNode):
        inner = _input_type(node.type, None)
        return GraphQLNonNull(inner) if inner is not None else None  # type: ignore[arg-type]
    if isinstance(node, ListTypeNode):
        inner = _input_type(node.type, None)
        return GraphQLList(inner) if inner is not None else None
    assert isinstance(node, NamedTypeNode)
    return specified_scalar_types.get(node.name.value)


def _refused(value: Any, wanted: GraphQLInputType) -> str | None:
    """Why graphql-core would refuse `value` for `wanted`, in words; None when it takes it."""
    errors: list[str] = []

    def on_error(error: GraphQLError, path: Any) -> None:
        errors.append(error.message.rstrip("."))

    validate_input_value(value, wanted, on_error)
    if not errors:
        return None
    shown = json.dumps(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{shown} is not ({errors[0]})"
