"""`query:` → the GraphQL query to Scope AR: its text checked, its problems placed in the YAML, its variables."""

from __future__ import annotations

import re
from typing import Any

from mapper.language.compiler.connections import check_connection
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import ENV, WEBHOOK, Scope
from mapper.language.graphql import check as graphql_check
from mapper.language.plan import Connection, GraphQLQuery
from mapper.language.source import Path

PATH: Path = ("query",)


def query(
    c: Compilation, data: Any, connections: dict[str, Connection]
) -> tuple[GraphQLQuery | None, dict[str, Any] | None]:
    """The query and the shape it selects (for `result.` names), or (None, None)."""
    if not isinstance(data, dict):
        return None, None
    name = data.get("connection")
    if isinstance(name, str):
        check_connection(c, (*PATH, "connection"), name, connections, needs="url")
    text = data.get("graphql")
    if not isinstance(text, str):
        return None, None
    operation = data.get("operation") if isinstance(data.get("operation"), str) else None
    variables_data: dict[str, Any] = data["variables"] if isinstance(data.get("variables"), dict) else {}
    checked = graphql_check.check(text, operation, set(variables_data), c.options.graphql_schema)
    for problem in checked.problems:
        _report(c, text, problem)
    variables = c.value((*PATH, "variables"), variables_data, Scope({**WEBHOOK, **ENV}, place="variables"))
    location = c.doc.location(PATH, key=True)
    return GraphQLQuery(location, name if isinstance(name, str) else "", text, operation, variables), checked.selection


def _report(c: Compilation, text: str, problem: graphql_check.GraphQLProblem) -> None:
    if problem.variable is not None:
        at: Path = (*PATH, "variables", problem.variable)
        c.error(at, problem.message, problem.hint, location=c.doc.location(at, key=True))
        return
    location = c.doc.location_in_scalar((*PATH, "graphql"), problem.offset, problem.width)
    message = re.sub(  # lines of the query text → lines of the file
        r"\bat line (\d+)\b", lambda m: f"on line {_file_line(c, text, int(m.group(1)))}", problem.message
    )
    c.error((*PATH, "graphql"), message, problem.hint, location=location)


def _file_line(c: Compilation, text: str, line: int) -> int:
    offset = sum(len(x) + 1 for x in text.split("\n")[: max(line - 1, 0)])
    return c.doc.location_in_scalar((*PATH, "graphql"), offset).line
