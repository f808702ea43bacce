"""`steps:` → Step records: where each request goes, what it sends, what it captures, what its answers mean."""

from __future__ import annotations

import json
from typing import Any

from mapper.language.compiler import outcomes
from mapper.language.compiler.connections import check_connection, url_value
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.graphql_step import graphql_call
from mapper.language.compiler.scope import ENV, RESPONSE, Scope
from mapper.language.expressions import EvaluationError
from mapper.language.plan import Body, Connection, Expression, Step, Value
from mapper.language.source import Path

BODY_KEYS = ("json", "form", "body")


def steps(c: Compilation, data: Any, scope: Scope, connections: dict[str, Connection]) -> list[Step]:
    if not isinstance(data, list):
        return []
    keys = [str(s.get("name", "")).replace("-", "_") if isinstance(s, dict) else "" for s in data]
    earlier: dict[str, tuple[str, ...]] = {}
    seen: dict[str, int] = {}
    result = []
    for index, spec in enumerate(data):
        if not isinstance(spec, dict):
            continue
        path: Path = ("steps", index)
        key = keys[index]
        if key and key in seen:
            c.error(
                (*path, "name"),
                f"two steps are named `{spec.get('name')}`",
                f"step names must be unique (`-` and `_` count as the same); the first is step {seen[key] + 1}",
            )
        seen.setdefault(key, index)
        # A second step of the same name (reported above) reads the first one's captures, and later steps may
        # read the captures of both: the rest of the mapping is checked as if the names differed, so what
        # follows is said once, right, and not as a chain of echoes of the duplicate.
        step_scope = Scope(
            {**scope.names, **ENV, "steps": "earlier steps"},
            dict(earlier),
            frozenset(k for k in keys[index:] if k and k not in earlier),
            scope.selection,
            scope.has_query,
            "step",
            "" if key in earlier else key,
            absent=scope.absent,
        )
        step = _step(c, path, spec, step_scope, connections)
        capture = spec.get("capture")
        captured = tuple(capture) if isinstance(capture, dict) else ()
        earlier[key] = (*earlier.get(key, ()), *(name for name in captured if name not in earlier.get(key, ())))
        if step is not None:
            result.append(step)
    return result


def _step(
    c: Compilation, path: Path, spec: dict[str, Any], scope: Scope, connections: dict[str, Connection]
) -> Step | None:
    when = c.query((*path, "when"), spec.get("when"), scope) if "when" in spec else None
    for_each = c.query((*path, "for_each"), spec.get("for_each"), scope) if "for_each" in spec else None
    if for_each is not None:
        _constant_list(c, (*path, "for_each"), for_each)
    inner = scope.but(item="the current item of `for_each`", index="the position of the item") if for_each else scope
    graphql, selection, url_path, url, body = None, None, None, None, Body()
    if "graphql" in spec:
        graphql, selection = graphql_call(c, path, spec, inner, connections)
    else:
        url_path, url = _target(c, path, spec, inner, connections)
        body = _body(c, path, spec, inner)
    answer = Scope(dict(RESPONSE), selection=selection, place="capture", selected_by="the step's GraphQL")
    capture = _captures(c, path, spec.get("capture"), answer)
    expect, on_status = outcomes.statuses(c, path, spec.get("expect"), spec.get("on_status"))
    answer = Scope(dict(RESPONSE), selection=selection, place="outcome", selected_by="the step's GraphQL")
    rules = outcomes.rules(c, path, spec.get("outcomes"), inner, answer)
    on_error = outcomes.error_codes(c, path, spec.get("on_error"), "graphql" in spec)
    name, connection = spec.get("name"), spec.get("connection")
    method = "POST" if "graphql" in spec else spec.get("method")
    if not (isinstance(name, str) and isinstance(method, str) and isinstance(connection, str)):
        return None  # the schema check has said what is missing
    return Step(
        name=name,
        key=name.replace("-", "_"),
        location=c.doc.location((*path, "name")),
        connection=connection,
        method=method,
        path=url_path,
        url=url,
        params=c.pairs((*path, "params"), spec.get("params"), inner),
        headers=c.pairs((*path, "headers"), spec.get("headers"), inner),
        body=body,
        when=when,
        for_each=for_each,
        capture=capture,
        expect=expect,
        on_status=on_status,
        timeout=c.duration((*path, "timeout"), spec.get("timeout"), 0.0) or None,
        outcomes=rules,
        graphql=graphql,
        on_error=on_error,
    )


def _target(
    c: Compilation, path: Path, spec: dict[str, Any], scope: Scope, connections: dict[str, Connection]
) -> tuple[Value | None, Value | None]:
    """Where the request goes: a `path` below the connection's `base_url`, or a whole `url`."""
    connection = spec.get("connection")
    if isinstance(connection, str):
        needs = "base_url" if "path" in spec else ""
        check_connection(c, (*path, "connection"), connection, connections, needs=needs)
    if "path" in spec and "url" in spec:
        c.error((*path, "url"), "a step has `path` or `url`, not both", key=True)
    elif "path" not in spec and "url" not in spec:
        c.error(
            path,
            "the step needs a `path` (below the connection's `base_url`) or a whole `url`",
            location=c.doc.location((*path, "name")),
        )
    url_path = None
    if isinstance(spec.get("path"), str):
        url_path = c.value((*path, "path"), spec["path"], scope, url_path=True)
        if not spec["path"].startswith(("/", "{{")):
            c.error((*path, "path"), "a path starts with `/`")
    url = url_value(c, (*path, "url"), spec.get("url"), scope) if "url" in spec else None
    return url_path, url


def _body(c: Compilation, path: Path, spec: dict[str, Any], scope: Scope) -> Body:
    """What the request sends: one of `json`, `form` or a raw `body` (with its `content_type`)."""
    bodies = [k for k in BODY_KEYS if k in spec]
    if len(bodies) > 1:
        c.error((*path, bodies[1]), f"a step sends one body: `{bodies[0]}` or `{bodies[1]}`, not both", key=True)
    method = spec.get("method")
    if bodies and method in ("GET", "HEAD"):
        c.error((*path, bodies[0]), f"a {method} request cannot send a body", key=True)
    if "content_type" in spec and "body" not in spec:
        c.warning(
            (*path, "content_type"),
            "`content_type` applies only to a raw `body`",
            "json and form bodies set their content type themselves",
        )
    if "json" in spec:
        return Body("json", c.value((*path, "json"), spec["json"], scope))
    if isinstance(spec.get("form"), dict):
        return Body("form", c.value((*path, "form"), spec["form"], scope))
    if isinstance(spec.get("body"), str):
        content_type = spec.get("content_type") if isinstance(spec.get("content_type"), str) else "text/plain"
        return Body("text", c.value((*path, "body"), spec["body"], scope), content_type)
    return Body()


def _captures(c: Compilation, path: Path, data: Any, answer: Scope) -> tuple[tuple[str, Expression], ...]:
    """`capture:` reads the response only (status, headers, body), for the steps after this one."""
    if not isinstance(data, dict):
        return ()
    compiled = ((key, c.query((*path, "capture", key), source, answer)) for key, source in data.items())
    return tuple((key, expression) for key, expression in compiled if expression is not None)


def _constant_list(c: Compilation, path: Path, expression: Expression) -> None:
    """A `for_each` that reads no name gives the same value for every event: it must be a list (or null)."""
    if expression.query.references:
        return
    try:
        value = expression.search({})
    except EvaluationError:
        return  # fails on every event: the run says how, with the same words
    if value is not None and not isinstance(value, list):
        kind = {str: "a text", bool: "true or false", int: "a number", float: "a number", dict: "an object"}
        c.error(
            path,
            f"`for_each` gives {kind.get(type(value), 'a value')} ({json.dumps(value)[:40]}), not a list",
            "for_each takes a list: a path to one in the data (e.g. `result.node.parts`), or a JSON list in backticks",
        )
