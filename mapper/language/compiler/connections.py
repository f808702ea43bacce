"""`connections:` → Connection records: URLs whose host only `env` may choose, auth, TLS, CSRF, retries."""

from __future__ import annotations

import re
from typing import Any

from mapper.errors import did_you_mean
from mapper.language import expressions
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import ENV, Scope
from mapper.language.expressions import ExpressionSyntaxError
from mapper.language.plan import Auth, Connection, Csrf, RetryPolicy, Tls, Value
from mapper.language.source import Path

AUTH_KINDS = ("basic", "bearer", "api_key", "oauth2")
AUTH_FIELDS = ("username", "password", "token", "value", "token_url", "client_id", "client_secret")


def connections(c: Compilation, data: Any) -> dict[str, Connection]:
    result: dict[str, Connection] = {}
    if not isinstance(data, dict):
        return result
    for name, spec in data.items():
        if isinstance(spec, dict):
            result[name] = _connection(c, name, spec)
    return result


def _connection(c: Compilation, name: str, spec: dict[str, Any]) -> Connection:
    path: Path = ("connections", name)
    env_only = Scope(dict(ENV), place="connection")
    url = url_value(c, (*path, "url"), spec.get("url"), env_only) if "url" in spec else None
    base_url = url_value(c, (*path, "base_url"), spec.get("base_url"), env_only) if "base_url" in spec else None
    if url is None and base_url is None and "url" not in spec and "base_url" not in spec:
        c.error(path, f"connection `{name}` needs `base_url` (for steps) or `url` (for the GraphQL query)", key=True)
    if "url" in spec and "base_url" in spec:
        c.error(
            (*path, "base_url"), "a connection has either `url` (GraphQL) or `base_url` (steps), not both", key=True
        )
    idempotency_header = spec.get("idempotency_header")
    return Connection(
        name=name,
        location=c.doc.location(path, key=True),
        url=url,
        base_url=base_url,
        headers=c.pairs((*path, "headers"), spec.get("headers"), env_only),
        params=c.pairs((*path, "params"), spec.get("params"), env_only),
        timeout=c.duration((*path, "timeout"), spec.get("timeout"), 30.0),
        tls=_tls(spec.get("tls")),
        auth=_auth(c, (*path, "auth"), spec.get("auth"), env_only),
        csrf=_csrf(spec.get("csrf")),
        idempotency_header=idempotency_header if isinstance(idempotency_header, str) else None,
        retry=_retry(c, (*path, "retry"), spec.get("retry")),
    )


def url_value(c: Compilation, path: Path, data: Any, scope: Scope) -> Value | None:
    """A base URL or URL: its scheme and host may come only from `env`, never from event data."""
    if not isinstance(data, str):
        return None
    origin = data[: _origin_end(data)]
    if not (origin.startswith(("http://", "https://")) or origin.startswith("{{")):
        c.error(path, "a URL must start with `https://` (or `http://`)")
        return None
    for match in re.finditer(r"\{\{(.*?)\}\}|\{%(.*?)%\}|\{#", origin, re.DOTALL):
        if _chosen_by_data(match.group(0)):
            c.error(
                path,
                "the scheme and host of a URL may only come from `env`",
                "event data must never choose where a request goes; use `path` for the rest",
                location=c.doc.location_in_scalar(path, match.start(), len(match.group(0))),
            )
            return None  # said once; the names in it are not worth a second message each
    return c.value(path, data, scope)


def _chosen_by_data(tag: str) -> bool:
    """Whether a `{{ }}` or `{% %}` before a URL's path may read anything but `env`."""
    if not tag.startswith("{{"):
        # A tag cannot be checked alone (`{% if payload.x %}evil{% else %}good{% endif %}` splits the
        # choice over three tags), so before the path only `{{ env.NAME }}` is allowed.
        return True
    try:
        refs = expressions.compile_template(tag).references
    except ExpressionSyntaxError:
        return False  # a `{{ }}` that fails alone fails in the whole value too, and is reported there
    return any(chain[0] != "env" for chain in refs)


def _origin_end(url: str) -> int:
    """Where the path starts in a URL template: the first `/` after `://` that is outside `{{ }}`."""
    start = url.find("://")
    index = start + 3 if start >= 0 else 0
    depth = 0
    while index < len(url):
        if url.startswith(("{{", "{%"), index):
            depth += 1
            index += 2
            continue
        if url.startswith(("}}", "%}"), index):
            depth = max(0, depth - 1)
            index += 2
            continue
        if url[index] in "/?#" and depth == 0:
            return index
        index += 1
    return len(url)


def check_connection(c: Compilation, path: Path, name: str, known: dict[str, Connection], needs: str) -> None:
    """A step's or the query's `connection:` names one that is there, of the kind it needs."""
    if name not in known:
        c.error(
            path,
            f"there is no connection `{name}`",
            did_you_mean(name, known)
            or (f"connections: {', '.join(known)}" if known else "add it under `connections:`"),
        )
        return
    connection = known[name]
    if needs == "url" and connection.url is None and connection.base_url is not None:
        who = "a GraphQL step" if path[:1] == ("steps",) else "the query"
        c.error(path, f"connection `{name}` has a `base_url`, but {who} needs a GraphQL endpoint `url`")
    if needs == "base_url" and connection.base_url is None and connection.url is not None:
        c.error(
            path,
            f"connection `{name}` is a GraphQL endpoint (`url`); a step with `path` needs a `base_url`",
            "give the step a whole `url`, or use a connection with `base_url`",
        )


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _tls(data: Any) -> Tls:
    if not isinstance(data, dict):
        return Tls()
    files = {key: _text(data, key) for key in ("ca_file", "client_cert", "client_key")}
    return Tls(verify=data.get("verify") is not False, **files)


def _auth(c: Compilation, path: Path, data: Any, scope: Scope) -> Auth:
    if not isinstance(data, dict) or len(data) != 1:
        return Auth()
    kind, spec = next(iter(data.items()))
    if kind not in AUTH_KINDS or not isinstance(spec, dict):
        return Auth()
    values = {
        key: c.value((*path, kind, key), spec[key], scope) for key in AUTH_FIELDS if isinstance(spec.get(key), str)
    }
    return Auth(
        kind=kind,
        values=values,
        name=_text(spec, "name"),
        placement="query" if spec.get("in") == "query" else "header",
        scopes=tuple(str(s) for s in spec.get("scopes") or [] if isinstance(s, str)),
        audience=_text(spec, "audience"),
        client_auth="body" if spec.get("client_auth") == "body" else "basic",
    )


def _csrf(data: Any) -> Csrf | None:
    if not isinstance(data, dict):
        return None
    return Csrf(fetch_path=_text(data, "fetch_path") or "/", header=_text(data, "header") or "x-csrf-token")


def _retry(c: Compilation, path: Path, data: Any) -> RetryPolicy:
    default = RetryPolicy()
    if not isinstance(data, dict):
        return default
    statuses, schedule, jitter, quick = (data.get(k) for k in ("statuses", "schedule", "jitter", "quick_retries"))
    return RetryPolicy(
        statuses=frozenset(s for s in statuses if isinstance(s, int))
        if isinstance(statuses, list)
        else default.statuses,
        network_errors=data.get("network_errors") is not False,
        schedule=tuple(c.duration((*path, "schedule", i), s, 0.0) for i, s in enumerate(schedule))
        if isinstance(schedule, list)
        else default.schedule,
        jitter=float(jitter) if isinstance(jitter, int | float) else default.jitter,
        max_retry_after=c.duration((*path, "max_retry_after"), data.get("max_retry_after"), default.max_retry_after),
        quick_retries=quick if isinstance(quick, int) else default.quick_retries,
    )
