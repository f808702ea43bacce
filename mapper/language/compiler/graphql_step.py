"""A step with `graphql:` → its GraphQLCall: a query or a mutation to a connection's GraphQL `url`, checked like
the mapping's `query:`, with the keys of an HTTP request (method, path, body) refused in plain words."""

from __future__ import annotations

from typing import Any

from mapper.language.compiler import query
from mapper.language.compiler.connections import check_connection
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import Scope
from mapper.language.plan import Connection, GraphQLCall
from mapper.language.source import Path

# What an HTTP step says that a GraphQL step does not: the document is always POSTed to the connection's `url`.
_NOT_FOR_GRAPHQL = {
    "method": "a GraphQL step is always sent as a POST",
    "path": "a GraphQL step is sent to its connection's `url`",
    "url": "a GraphQL step is sent to its connection's `url`",
    "json": "the body of a GraphQL step is its document and `variables:`",
    "form": "the body of a GraphQL step is its document and `variables:`",
    "body": "the body of a GraphQL step is its document and `variables:`",
    "content_type": "a GraphQL step is sent as application/json",
    "params": "a GraphQL step sends its connection's `params`; put query parameters there",
    "headers": "a GraphQL step sends its connection's `headers`; put headers there",
}


def graphql_call(
    c: Compilation, path: Path, spec: dict[str, Any], scope: Scope, connections: dict[str, Connection]
) -> tuple[GraphQLCall | None, dict[str, Any] | None]:
    """The step's document and what it selects (for `body.data.` in `capture` and `outcomes`)."""
    for key, why in _NOT_FOR_GRAPHQL.items():
        if key in spec:
            c.error((*path, key), f"`{key}` is not used by a GraphQL step", f"{why}; remove `{key}`", key=True)
    name = spec.get("connection")
    if isinstance(name, str):
        check_connection(c, (*path, "connection"), name, connections, needs="url")
    api_schema = c.options.graphql_schemas.get(name) if isinstance(name, str) else None
    found = query.document(c, path, spec, scope, api_schema, target=True)
    if found is None:
        return None, None
    call = GraphQLCall(found.text, found.operation, found.variables, found.checked.mutation)
    return call, found.checked.selection
