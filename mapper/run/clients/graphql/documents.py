"""What a GraphQL document declares, read once per document text: the variables it cannot do without."""

from __future__ import annotations

from functools import lru_cache

from graphql import GraphQLError, NonNullTypeNode, OperationDefinitionNode, parse, print_ast


@lru_cache(maxsize=128)
def required_variables(document: str, operation: str | None) -> tuple[tuple[str, str], ...]:
    """(name, type) of each variable the operation declares non-null (`$id: ID!`); () if it cannot be read."""
    try:
        tree = parse(document, no_location=True)
    except GraphQLError:
        return ()
    operations = [node for node in tree.definitions if isinstance(node, OperationDefinitionNode)]
    if operation is not None:
        operations = [node for node in operations if node.name is not None and node.name.value == operation]
    if len(operations) != 1:
        return ()
    return tuple(
        (definition.variable.name.value, print_ast(definition.type))
        for definition in operations[0].variable_definitions or ()
        if isinstance(definition.type, NonNullTypeNode)
    )
