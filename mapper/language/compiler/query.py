"""`query:` and a step's `graphql:` → GraphQL documents: their text checked, problems placed in the YAML, variables.

The mapping's `query:` reads from Scope AR (a query, with Scope AR's rules); a step's `graphql:` may also be a
mutation, sent to a target system's GraphQL API. Both are checked the same way: syntax, operations, variables
declared and given, written-out values against their types, and the API's schema when `--graphql-schema` gave one.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from mapper.language import expressions
from mapper.language.compiler.connections import check_connection
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import ENV, WEBHOOK, Scope
from mapper.language.graphql import check as graphql_check
from mapper.language.plan import Connection, GraphQLQuery, Value
from mapper.language.source import Path

PATH: Path = ("query",)


class Document(NamedTuple):
    text: str
    operation: str | None
    variables: Value
    checked: graphql_check.Checked


def query(
    c: Compilation, data: Any, connections: dict[str, Connection], given: Scope | None = None
) -> tuple[GraphQLQuery | None, dict[str, Any] | None]:
    """The query and the shape it selects (for `result.` names), or (None, None).

    `given`: the names the variables may use besides `env` (the webhook's, or a schedule's `since`/`until`)."""
    if not isinstance(data, dict):
        return None, None
    name = data.get("connection")
    if isinstance(name, str):
        check_connection(c, (*PATH, "connection"), name, connections, needs="url")
    api_schema = c.options.graphql_schemas.get(name) if isinstance(name, str) else None
    scope = Scope(
        {**(given.names if given else WEBHOOK), **ENV}, place="variables", absent=given.absent if given else {}
    )
    found = document(c, PATH, data, scope, api_schema or c.options.graphql_schema, target=False)
    if found is None:
        return None, None
    location = c.doc.location(PATH, key=True)
    connection = name if isinstance(name, str) else ""
    return GraphQLQuery(location, connection, found.text, found.operation, found.variables), found.checked.selection


def document(
    c: Compilation, path: Path, data: dict[str, Any], scope: Scope, api_schema: Any, target: bool
) -> Document | None:
    """The `graphql:`, `operation:` and `variables:` at `path`, checked; None when there is no text."""
    text = data.get("graphql")
    if not isinstance(text, str):
        return None
    operation = data.get("operation") if isinstance(data.get("operation"), str) else None
    variables_data: dict[str, Any] = data["variables"] if isinstance(data.get("variables"), dict) else {}
    literals = {key: value for key, value in variables_data.items() if not _has_template(value)}
    checked = graphql_check.check(text, operation, set(variables_data), api_schema, target=target, literals=literals)
    for problem in checked.problems:
        _report(c, path, text, problem)
    variables = c.value((*path, "variables"), variables_data, scope)
    return Document(text, operation, variables, checked)


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return expressions.is_template(value)
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def _report(c: Compilation, path: Path, text: str, problem: graphql_check.GraphQLProblem) -> None:
    if problem.variable is not None:
        at: Path = (*path, "variables", problem.variable)
        c.error(at, problem.message, problem.hint, location=c.doc.location(at, key=True))
        return
    location = c.doc.location_in_scalar((*path, "graphql"), problem.offset, problem.width)
    message = re.sub(  # lines of the query text → lines of the file
        r"\bat line (\d+)\b", lambda m: f"on line {_file_line(c, path, text, int(m.group(1)))}", problem.message
    )
    c.error((*path, "graphql"), message, problem.hint, location=location)


def _file_line(c: Compilation, path: Path, text: str, line: int) -> int:
    offset = sum(len(x) + 1 for x in text.split("\n")[: max(line - 1, 0)])
    return c.doc.location_in_scalar((*path, "graphql"), offset).line
