"""A mapping's connection with the environment read: `plan.Connection` + env → the clients' ConnectionSettings.

A connection's templates (URL, headers, params, auth) read only `env`. They are rendered here, once per
connection and runner; a variable that is not set, or a template that fails, makes the connection unusable
with a message that names the place in the mapping. The clients check the rendered values (a URL they can
use, headers without line breaks, the credentials each kind of auth needs).
"""

from __future__ import annotations

from collections.abc import Mapping

from mapper.language.plan import Connection, Value
from mapper.run.clients.errors import ConnectionUnusable
from mapper.run.clients.settings import AuthSettings, ConnectionSettings, CsrfSettings, RetrySettings, TlsSettings
from mapper.run.clients.target import text


def resolve(connection: Connection, env: Mapping[str, str]) -> ConnectionSettings:
    """The connection's settings as plain values; ConnectionUnusable when the environment cannot fill them."""
    name = connection.name
    given = connection.base_url or connection.url
    if given is None:
        raise ConnectionUnusable(f"connection `{name}` has neither `base_url` nor `url`")
    auth, tls, retry, csrf = connection.auth, connection.tls, connection.retry, connection.csrf
    auth_values = {key: _render(value, env, name) for key, value in auth.values.items()}
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
        secrets=tuple(_env_read(connection, env)),
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


def _env_read(connection: Connection, env: Mapping[str, str]) -> list[str]:
    """Every env value the connection's templates read (all of them where a name is computed)."""
    values = [connection.url, connection.base_url, *connection.auth.values.values()]
    values += [value for _, value in connection.headers + connection.params]
    secrets: list[str] = []
    for value in values:
        for template in value.templates if value is not None else ():
            for chain in template.references:
                if chain[0] != "env":
                    continue
                if len(chain) > 1:
                    if chain[1] in env:
                        secrets.append(text(env[chain[1]]))
                else:  # env read with a computed name: every value may be the one
                    secrets += [text(item) for item in env.values()]
    return secrets
