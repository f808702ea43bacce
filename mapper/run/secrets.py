"""Which env values of a mapping are secrets (masked `***`) and which are only shown by name (`‹NAME›`).

A variable is a secret when the mapping sends it as a credential (in `auth` or in a header, of a connection
or of a step, or as a query parameter whose name says credential), when its name says so (`*_PASSWORD`,
`*_TOKEN`, `*_SECRET`, `*_KEY`), or when the mapping lists it under `secrets:`. Every other env value (a base
URL, a caller id) is no secret, and traces show it by its name so they stay readable without showing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


def masker_for(plan: Plan, env: Mapping[str, str]) -> Masker:
    """A masker that hides the plan's secret env values and names the others."""
    secret = secret_names(plan)
    masker = Masker(labels={name: env[name] for name in sorted(plan.env_names - secret) if name in env})
    for name in sorted(secret):
        if name in env:
            masker.add(env[name])
    return masker


def secret_values(plans: Iterable[Plan], env: Mapping[str, str]) -> list[str]:
    """Every secret value the plans read from `env` (for the service's log lines)."""
    return sorted({env[name] for plan in plans for name in secret_names(plan) if name in env})


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
