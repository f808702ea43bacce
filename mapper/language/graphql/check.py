"""Check a mapping's GraphQL query: syntax, operations, variables, selected fields, and the API schema if given.

graphql-core parses and validates. It is imported with the first query checked, not with this module:
it takes ~100 ms to import, which a mapping without a query (and every command that checks none) is spared.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mapper.language.graphql.problems import GraphQLProblem, QuerySyntaxError, SchemaFileError

if TYPE_CHECKING:
    from graphql.language import DocumentNode, OperationDefinitionNode

    from mapper.language.graphql.selection import Node

__all__ = ["Checked", "GraphQLProblem", "SchemaFileError", "check", "load_schema"]


@dataclass
class Checked:
    problems: list[GraphQLProblem] = field(default_factory=list)
    selection: dict[str, Node] | None = None  # response key → what the query selects under it
    mutation: bool = False  # the operation to run is a mutation (not safe to repeat)


def check(
    text: str,
    operation: str | None,
    given: Iterable[str],
    api_schema: Any = None,
    *,
    target: bool = False,
    literals: Mapping[str, Any] | None = None,
) -> Checked:
    """The problems of one document. `target`: a step's document (a query or a mutation), not the mapping's
    `query:` to Scope AR (a query only, with Scope AR's own rules). `literals`: the variables written out
    in the YAML (no template), whose values are checked against their declared types."""
    from mapper.language.graphql import api_schema as against_schema
    from mapper.language.graphql import reading, rules, selection, values

    result = Checked()
    try:
        document = reading.parse(text)
    except QuerySyntaxError as exc:
        result.problems.append(GraphQLProblem(f"GraphQL: {exc.message}", exc.offset, exc.width))
        return result
    result.problems.extend(rules.check(document))
    chosen = _choose(document, operation, result.problems)
    if chosen is None:
        return result
    kind = chosen.operation.value
    result.mutation = kind == "mutation"
    if kind == "subscription" or (kind != "query" and not target):
        result.problems.append(_wrong_kind(chosen, kind, target))
    result.problems.extend(_variables(document, chosen, set(given)))
    result.problems.extend(values.check(chosen, literals or {}, api_schema))
    result.selection = selection.selection_tree(document, chosen)
    if api_schema is not None:
        result.problems.extend(against_schema.check(document, api_schema, scope_api=not target))
    return result


def _wrong_kind(chosen: OperationDefinitionNode, kind: str, target: bool) -> GraphQLProblem:
    if target:
        message = f"GraphQL: a step sends a query or a mutation, not a {kind}"
        hint = "a subscription keeps a connection open; a step sends one request and reads one answer"
    else:
        message = f"GraphQL: a mapping's query must read data, not run a {kind}"
        hint = "start the text with `query`"
    return GraphQLProblem(message, _start(chosen), len(kind), hint)


def load_schema(path: Path) -> Any:
    """Read an API schema: SDL text (`schema.graphql`) or an introspection result (JSON)."""
    from mapper.language.graphql import api_schema

    return api_schema.load(path)


def _start(node: Any) -> int:
    return node.loc.start if node.loc is not None else 0


def _choose(
    document: DocumentNode, operation: str | None, problems: list[GraphQLProblem]
) -> OperationDefinitionNode | None:
    """The operation to run: the one named by `operation:`, or the only one."""
    from graphql.language import OperationDefinitionNode

    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        hint = "write e.g. `query ($id: ID!) { node(id: $id) { id } }`"
        problems.append(GraphQLProblem("GraphQL: the query text has no operation", 0, 1, hint))
        return None
    if operation is not None:
        chosen = next((op for op in operations if op.name is not None and op.name.value == operation), None)
        if chosen is None:
            names = ", ".join(op.name.value for op in operations if op.name) or "none has a name"
            problems.append(GraphQLProblem(f"GraphQL: there is no operation `{operation}` (operations: {names})", 0))
        return chosen
    if len(operations) > 1:
        second = operations[1]
        problems.append(
            GraphQLProblem(
                "GraphQL: the query text holds several operations",
                _start(second),
                len(second.operation.value),
                "say which one to run with `operation:`",
            )
        )
        return None
    return operations[0]


def _variables(document: DocumentNode, chosen: OperationDefinitionNode, given: set[str]) -> Iterator[GraphQLProblem]:
    """Every required variable given under `variables:`, and nothing given that the query does not declare."""
    from graphql import print_ast
    from graphql.language import NonNullTypeNode

    from mapper.language.graphql import rules

    declared = set()
    for definition in chosen.variable_definitions or ():
        name = definition.variable.name.value
        declared.add(name)
        required = isinstance(definition.type, NonNullTypeNode) and definition.default_value is None
        if required and name not in given:
            yield GraphQLProblem(
                f"GraphQL: the query needs `${name}` but `variables:` does not give it",
                _start(definition),
                len(name) + 1,
                _variable_hint(name, print_ast(definition.type)),
            )
    used = rules.used_variables(document, chosen)
    for name in sorted(given - declared - used):  # a used one is reported where it is used: declare it
        yield GraphQLProblem(
            f"GraphQL: `{name}` is given under `variables:` but the query declares no `${name}`",
            0,
            1,
            f"declare it, e.g. `query (${name}: ID!)`, or remove it",
            variable=name,
        )


def _variable_hint(name: str, type_: str) -> str:
    plain = type_.rstrip("!")
    if plain == "ID":
        return f'add it under `variables:`, e.g. `{name}: "{{{{ event.resource_id }}}}"`'
    return f"add `{name}: ...` under `variables:`, or give it a default in the query (`${name}: {plain} = ...`)"
