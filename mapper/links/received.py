"""The runner's side of a signed link: does the `externalData` an event carries still match its signature?"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mapper.language.plan import SIGNATURE_PARAMETER, Link
from mapper.links import signing

MISMATCH = "deep link signature does not match"


def external_data(link: Link, scope: Mapping[str, Any]) -> Any:
    """The externalData where the mapping reads it (JSON text is parsed, as `from_json` does); None if absent."""
    value: Any = scope
    for name in link.external_data:
        value = value.get(name) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value


def signature_problem(link: Link, scope: Mapping[str, Any], keys: Sequence[bytes]) -> str | None:
    """None when the event's externalData carries a signature made with one of `keys`; else the skip reason."""
    data = external_data(link, scope)
    if not isinstance(data, Mapping):
        return f"{MISMATCH} (the event carries no externalData)"
    signature = data.get(SIGNATURE_PARAMETER)
    if not isinstance(signature, str):
        return f"{MISMATCH} (the link carried no `{SIGNATURE_PARAMETER}`)"
    pairs = [(p.name, _text(data[p.name])) for p in link.parameters if p.name in data and data[p.name] is not None]
    if signing.matches(pairs, signature, keys):
        return None
    return f"{MISMATCH}: externalData was changed after the link was made, or it was signed with another key"


def _text(value: Any) -> str:
    """A value as the link carried it: WorkLink keeps text; anything else is written as JSON (`true`, `7`)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
