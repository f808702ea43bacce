"""Which env values of a mapping are secrets (masked `***`) and which are only shown by name (`‹NAME›`).

A variable is a secret when the mapping sends it as a credential (in `auth` or in a header, of a connection
or of a step, or as a query parameter whose name says credential), when its name says so (`*_PASSWORD`,
`*_TOKEN`, `*_SECRET`, `*_KEY`), or when the mapping lists it under `secrets:`. Every other env value (a base
URL, a caller id) is no secret, and traces show it by its name so they stay readable without showing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote_plus

from mapper.language.plan import Plan, Value
from mapper.run.masking import SENSITIVE_PARAMS, Masker, looks_secret


def secret_names(plan: Plan) -> frozenset[str]:
    """The env variables of the plan whose values are secrets."""
    names = set(plan.secrets) | {name for name in plan.env_names if looks_secret(name)}
    for connection in plan.connections.values():
        credentials = [value for key, value in connection.auth.values.items() if key != "token_url"]
        names |= _read(credentials)
        names |= _read(value for _, value in connection.headers)
        names |= _read(value for key, value in connection.params if _credential_param(key, connection.auth.name))
    for step in plan.steps:
        names |= _read(value for _, value in step.headers)
        names |= _read(value for key, value in step.params if _credential_param(key, None))
    return frozenset(names)


def masker_for(plans: Plan | Iterable[Plan], env: Mapping[str, str]) -> Masker:
    """A masker that hides the plans' secret env values (and the base64 of each basic-auth pair they send)
    and names their other env values."""
    chosen = [plans] if isinstance(plans, Plan) else list(plans)
    secret = {name for plan in chosen for name in secret_names(plan)}
    named = {name for plan in chosen for name in plan.env_names} - secret
    masker = Masker(labels={name: env[name] for name in sorted(named) if name in env})
    for name in sorted(secret):
        if name in env:
            masker.add(env[name])
    for plan in chosen:
        for connection in plan.connections.values():
            _add_pair(masker, connection.auth.kind, connection.auth.values, env)
    return masker


def _add_pair(masker: Masker, kind: str, values: Mapping[str, Value], env: Mapping[str, str]) -> None:
    """The base64 of `user:password` a basic-auth (or OAuth2 client) connection sends, where env fills it."""
    keys = {"basic": ("username", "password"), "oauth2": ("client_id", "client_secret")}.get(kind)
    if keys is None or not all(key in values for key in keys):
        return
    try:
        user, password = (str(values[key].render({"env": env})) for key in keys)
    except Exception:  # an unset variable: the connection cannot send it either
        return
    if kind == "oauth2":  # RFC 6749 §2.3.1: form-encoded before they are joined
        user, password = quote_plus(user), quote_plus(password)
    masker.add_basic(user, password)


def _credential_param(name: str, api_key_name: str | None) -> bool:
    return name.lower() in SENSITIVE_PARAMS or (api_key_name is not None and name == api_key_name)


def _read(values: Iterable[Value | None]) -> set[str]:
    """The env variables the values' templates read."""
    names = set()
    for value in values:
        for template in value.templates if value is not None else ():
            for chain in template.references:
                if chain[0] == "env" and len(chain) > 1:
                    names.add(chain[1])
    return names
