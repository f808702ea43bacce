"""The checks a query needs no API schema for, by graphql-core's validation rules, reported in plain words.

Names of operations and fragments, unknown, unused and cyclic fragments, variables declared and used.
The rules run against a one-field stand-in schema: none of them looks a type up. With `--graphql-schema`,
`api_schema` runs the rest of graphql-core's rules against the real one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    TypeInfo,
    ValidationContext,
    print_ast,
    validate,
)
from graphql.language import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    NameNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    visit,
)
from graphql.validation import (
    ExecutableDefinitionsRule,
    KnownFragmentNamesRule,
    LoneAnonymousOperationRule,
    NoFragmentCyclesRule,
    NoUndefinedVariablesRule,
    NoUnusedFragmentsRule,
    NoUnusedVariablesRule,
    UniqueArgumentNamesRule,
    UniqueFragmentNamesRule,
    UniqueInputFieldNamesRule,
    UniqueOperationNamesRule,
    UniqueVariableNamesRule,
)

from mapper.language.graphql.problems import GraphQLProblem


@cache
def _stand_in() -> GraphQLSchema:
    return GraphQLSchema(GraphQLObjectType("Query", {"_": GraphQLField(GraphQLString)}))


class _Document:
    """The parsed query and what the explanations need: who owns each name, and the undeclared so far."""

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        self.owners: dict[int, Node] = {}
        self.undeclared: dict[int, list[str]] = {}  # operation → variables reported as not declared, in order
        visit(document, _Owners(self.owners))

    def owner(self, node: Node) -> Node:
        """The operation, fragment or spread a name belongs to (they are where the old messages pointed)."""
        return self.owners.get(id(node), node)


class _Owners(Visitor):
    def __init__(self, owners: dict[int, Node]) -> None:
        super().__init__()
        self.owners = owners

    def enter(self, node: Node, *_: Any) -> None:
        name = getattr(node, "name", None)
        if isinstance(node, OperationDefinitionNode | FragmentDefinitionNode | FragmentSpreadNode) and name:
            self.owners[id(name)] = node


def _nodes(error: GraphQLError) -> list[Node]:
    return list(error.nodes or ())


def _name(node: Node) -> str:
    """The name a node is or has: `$id`'s `id`, a fragment's name."""
    if isinstance(node, NameNode):
        return node.value
    name = getattr(node, "name", None)
    return name.value if isinstance(name, NameNode) else ""


def _position(error: GraphQLError) -> int:
    return next(iter(error.positions or ()), 0)


def _start(node: Node) -> int:
    return node.loc.start if node.loc is not None else 0


def _first_token(node: Node) -> int:
    """The width of a node's first token: `query`, `fragment`, `...`."""
    return node.loc.start_token.end - node.loc.start_token.start if node.loc is not None else 1


def _operation_head(operation: OperationDefinitionNode) -> str:
    kind = operation.operation.value
    return f"{kind} {operation.name.value}" if operation.name else f"{kind} "


def _undefined_variable(error: GraphQLError, found: _Document) -> GraphQLProblem | None:
    variable, operation = _nodes(error)
    assert isinstance(operation, OperationDefinitionNode)
    name = _name(variable)
    undeclared = found.undeclared.setdefault(id(operation), [])
    if name in undeclared:
        return None  # said at its first use
    undeclared.append(name)
    declared = [(v.variable.name.value, print_ast(v.type)) for v in operation.variable_definitions or ()]
    wanted = ", ".join(f"${n}: {t}" for n, t in [*declared, *((n, "ID!") for n in undeclared)])
    return GraphQLProblem(
        f"GraphQL: variable ${name} is used but not declared; declare it as `{_operation_head(operation)}({wanted})`",
        _start(variable),
        len(name) + 1,
    )


def _unused_variable(error: GraphQLError, found: _Document) -> GraphQLProblem:
    (definition,) = _nodes(error)
    name = _name(getattr(definition, "variable", definition))
    return GraphQLProblem(f"GraphQL: variable ${name} is declared but never used", _start(definition), len(name) + 1)


def _duplicate_variable(error: GraphQLError, found: _Document) -> GraphQLProblem:
    name_node = _nodes(error)[1]
    name = _name(name_node)
    return GraphQLProblem(f"GraphQL: variable ${name} is declared more than once", _start(name_node) - 1, len(name) + 1)


def _duplicate_name(kind: str) -> Callable[[GraphQLError, _Document], GraphQLProblem]:
    def explain(error: GraphQLError, found: _Document) -> GraphQLProblem:
        name_node = _nodes(error)[1]
        definition = found.owner(name_node)
        return GraphQLProblem(
            f"GraphQL: there is more than one {kind} named '{_name(name_node)}'; {kind} names must be unique",
            _start(definition),
            _first_token(definition),
        )

    return explain


def _lone_anonymous(error: GraphQLError, found: _Document) -> GraphQLProblem:
    (operation,) = _nodes(error)
    return GraphQLProblem(
        "GraphQL: an operation without a name must be the only operation in the query; give it a name",
        _start(operation),
        _first_token(operation),
    )


def _unknown_fragment(error: GraphQLError, found: _Document) -> GraphQLProblem:
    (name_node,) = _nodes(error)
    spread = found.owner(name_node)
    return GraphQLProblem(
        f"GraphQL: unknown fragment '{_name(name_node)}'; no fragment with that name is defined",
        _start(spread),
        _first_token(spread),
    )


def _unused_fragment(error: GraphQLError, found: _Document) -> GraphQLProblem:
    (fragment,) = _nodes(error)
    return GraphQLProblem(
        f"GraphQL: fragment '{_name(fragment)}' is defined but never used",
        _start(fragment),
        _first_token(fragment),
    )


def _fragment_cycle(error: GraphQLError, found: _Document) -> GraphQLProblem:
    spreads = _nodes(error)
    names = [_name(spreads[-1])] + [_name(spread) for spread in spreads]
    return GraphQLProblem(
        f"GraphQL: fragments form a cycle ({' → '.join(names)}); a fragment cannot include itself",
        _start(spreads[0]),
        _first_token(spreads[0]),
    )


def _not_executable(error: GraphQLError, found: _Document) -> GraphQLProblem:
    (definition,) = _nodes(error)
    return GraphQLProblem(
        f"GraphQL: `{_name(definition)}` is a schema definition; a query holds only operations and fragments",
        _start(definition),
        _first_token(definition),
    )


def plain(error: GraphQLError, found: _Document | None = None) -> GraphQLProblem:
    """Any other rule's message, as graphql-core words it, at its first place."""
    message = error.message.rstrip(".")
    return GraphQLProblem(f"GraphQL: {message[:1].lower()}{message[1:]}", _position(error))


Explain = Callable[[GraphQLError, _Document], GraphQLProblem | None]
RULES: tuple[tuple[Any, Explain], ...] = (
    (ExecutableDefinitionsRule, _not_executable),
    (UniqueOperationNamesRule, _duplicate_name("operation")),
    (LoneAnonymousOperationRule, _lone_anonymous),
    (UniqueFragmentNamesRule, _duplicate_name("fragment")),
    (KnownFragmentNamesRule, _unknown_fragment),
    (NoUnusedFragmentsRule, _unused_fragment),
    (NoFragmentCyclesRule, _fragment_cycle),
    (UniqueVariableNamesRule, _duplicate_variable),
    (NoUndefinedVariablesRule, _undefined_variable),
    (NoUnusedVariablesRule, _unused_variable),
    (UniqueArgumentNamesRule, plain),
    (UniqueInputFieldNamesRule, plain),
)


def check(document: DocumentNode) -> list[GraphQLProblem]:
    """Every schema-free problem of the document, in the order of the text."""
    found = _Document(document)
    problems = list(_empty_selections(document))
    for rule, explain in RULES:
        for error in validate(_stand_in(), document, [rule]):
            problem = explain(error, found)
            if problem is not None:
                problems.append(problem)
    return sorted(problems, key=lambda p: p.offset)


def _empty_selections(document: DocumentNode) -> Iterator[GraphQLProblem]:
    """`{}`: graphql-core 3.3 accepts it (a spec draft may allow it); the Scope AR API does not."""
    collected: list[SelectionSetNode] = []

    class Empty(Visitor):
        def enter_selection_set(self, node: SelectionSetNode, *_: Any) -> None:
            if not node.selections:
                collected.append(node)

    visit(document, Empty())
    for node in collected:
        end = node.loc.end - 1 if node.loc is not None else 0
        yield GraphQLProblem("GraphQL: expected a field name (the selection cannot be empty), found '}'", end)


def used_variables(document: DocumentNode, operation: OperationDefinitionNode) -> set[str]:
    """The names of every `$variable` the operation uses, also inside the fragments it spreads."""
    schema = _stand_in()
    context = ValidationContext(schema, document, TypeInfo(schema), lambda error: None)
    return {usage.node.name.value for usage in context.get_recursive_variable_usages(operation)}
