"""`steps:` → Step records: where each request goes, what it sends, what it captures, how statuses count."""

from __future__ import annotations

from typing import Any

from mapper.language.compiler.connections import check_connection, url_value
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import ENV, RESPONSE, Scope
from mapper.language.plan import Body, Connection, Expression, Step, Value
from mapper.language.source import Path

BODY_KEYS = ("json", "form", "body")
OUTCOMES = ("success", "skip", "retry", "fail")


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
        step_scope = Scope(
            {**scope.names, **ENV, "steps": "earlier steps"},
            dict(earlier),
            frozenset(k for k in keys[index:] if k),
            scope.selection,
            scope.has_query,
            "step",
            key,
        )
        step = _step(c, path, spec, step_scope, connections)
        capture = spec.get("capture")
        earlier[key] = tuple(capture) if isinstance(capture, dict) else ()
        if step is not None:
            result.append(step)
    return result


def _step(
    c: Compilation, path: Path, spec: dict[str, Any], scope: Scope, connections: dict[str, Connection]
) -> Step | None:
    when = c.query((*path, "when"), spec.get("when"), scope) if "when" in spec else None
    for_each = c.query((*path, "for_each"), spec.get("for_each"), scope) if "for_each" in spec else None
    inner = scope.but(item="the current item of `for_each`", index="the position of the item") if for_each else scope
    capture = _captures(c, path, spec.get("capture"))
    url_path, url = _target(c, path, spec, inner, connections)
    body = _body(c, path, spec, inner)
    expect, on_status = _statuses(c, path, spec.get("expect"), spec.get("on_status"))
    name, method, connection = spec.get("name"), spec.get("method"), spec.get("connection")
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


def _captures(c: Compilation, path: Path, data: Any) -> tuple[tuple[str, Expression], ...]:
    """`capture:` reads the response only (status, headers, body), for the steps after this one."""
    if not isinstance(data, dict):
        return ()
    response = Scope(dict(RESPONSE), place="capture")
    compiled = ((key, c.query((*path, "capture", key), source, response)) for key, source in data.items())
    return tuple((key, expression) for key, expression in compiled if expression is not None)


def _statuses(c: Compilation, path: Path, expect: Any, on_status: Any) -> tuple[frozenset[int] | None, dict[str, Any]]:
    """`expect:` (the statuses that are success) and `on_status:` (an outcome per status); never both for one."""
    outcomes: dict[str, Any] = on_status if isinstance(on_status, dict) else {}
    if not isinstance(expect, list):
        return None, {str(k): v for k, v in outcomes.items() if v in OUTCOMES}
    for status in expect:
        if isinstance(status, int) and str(status) in outcomes:
            c.error(
                (*path, "on_status", str(status)),
                f"status {status} is both expected and listed in `on_status`",
                key=True,
            )
    expected = frozenset(s for s in expect if isinstance(s, int))
    return expected, {str(k): v for k, v in outcomes.items() if v in OUTCOMES}
