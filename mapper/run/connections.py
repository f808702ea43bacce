"""A mapping's connection with the environment read: `plan.Connection` + env → the clients' ConnectionSettings.

A connection's templates (URL, headers, params, auth) read only `env`. They are rendered here, once per
connection and runner; a variable that is not set, or a template that fails, makes the connection unusable
with a message that names the place in the mapping. The clients check the rendered values (a URL they can
use, headers without line breaks, the credentials each kind of auth needs).
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from mapper.language.plan import Connection, Value
from mapper.run.clients.errors import ConnectionUnusable
from mapper.run.clients.settings import AuthSettings, ConnectionSettings, CsrfSettings, RetrySettings, TlsSettings
from mapper.run.clients.target import text


def resolve(connection: Connection, env: Mapping[str, str], secret: Set[str] = frozenset()) -> ConnectionSettings:
    """The connection's settings as plain values; ConnectionUnusable when the environment cannot fill them.

    `secret` names the env variables whose values are secrets (see `run.secrets`); the connection's other env
    values are handed over as labels, shown by name.
    """
    name = connection.name
    given = connection.base_url or connection.url
    if given is None:
        raise ConnectionUnusable(f"connection `{name}` has neither `base_url` nor `url`")
    auth, tls, retry, csrf = connection.auth, connection.tls, connection.retry, connection.csrf
    auth_values = {key: _render(value, env, name) for key, value in auth.values.items()}
    read = [variable for variable in _env_read(connection) if variable in env]
    return ConnectionSettings(
        name=name,
        url=_render(given, env, name),
        # A GraphQL `url` may carry a query (Scope AR super admins add `?permalink=<company>`); a base URL
        # that paths are joined to may not.
        is_endpoint=connection.base_url is None,
        timeout=connection.timeout,
        retry=RetrySettings(retry.statuses, retry.network_errors, retry.quick_retries),
        headers=tuple((key, _render(value, env, name)) for key, value in connection.headers),
        params=tuple((key, _render(value, env, name)) for key, value in connection.params),
        tls=TlsSettings(tls.verify, tls.ca_file, tls.client_cert, tls.client_key),
        auth=AuthSettings(
            auth.kind, auth_values, auth.name, auth.placement, auth.scopes, auth.audience, auth.client_auth
        ),
        csrf=CsrfSettings(csrf.fetch_path, csrf.header) if csrf is not None else None,
        idempotency_header=connection.idempotency_header,
        secrets=tuple(text(env[name]) for name in read if name in secret),
        labels=tuple((name, text(env[name])) for name in read if name not in secret),
    )


def _render(value: Value, env: Mapping[str, str], connection: str) -> str:
    unset = sorted({c[1] for t in value.templates for c in t.references if c[0] == "env" and len(c) > 1} - set(env))
    if unset:
        raise ConnectionUnusable(
            f"connection `{connection}` ({value.location}): {value.where}: environment variable `{unset[0]}` is not set"
        )
    try:
        rendered = value.render({"env": env})
    except Exception as exc:
        raise ConnectionUnusable(f"connection `{connection}` ({value.location}): {value.where}: {exc}") from None
    return text(rendered)


def _env_read(connection: Connection) -> list[str]:
    """Every env variable the connection's templates read, in a stable order."""
    values = [connection.url, connection.base_url, *connection.auth.values.values()]
    values += [value for _, value in connection.headers + connection.params]
    names: dict[str, None] = {}
    for value in values:
        for template in value.templates if value is not None else ():
            for chain in template.references:
                if chain[0] == "env" and len(chain) > 1:  # the compiler allows no computed names
                    names[chain[1]] = None
    return list(names)
