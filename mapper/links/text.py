"""The link as text: `worklink://resource?action=...&asset=...&name=value`, its deferred form, and reading one back.

Every name and value is percent-encoded as JavaScript's `encodeURIComponent` does (UTF-8; letters, digits and
`-_.!~*'()` as they are), so a system of record that builds or signs links in a script gets the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlsplit

# Scope AR's integration guide: `resource` is the host and is required; `action` is required.
WORKLINK = "worklink://resource"
# For devices that may not have the app: the store page first, then the link (scope-ar.md §2).
DEFERRED = "https://getworklink.com/deferred"

Pairs = Iterable[tuple[str, str]]


def encode(text: str) -> str:
    """Percent-encode like `encodeURIComponent`; a lone surrogate raises UnicodeEncodeError."""
    return quote(text, safe="!'()*~")


def query(pairs: Pairs) -> str:
    return "&".join(f"{encode(name)}={encode(value)}" for name, value in pairs)


def worklink_url(action: str, target: str, target_id: str, pairs: Pairs) -> str:
    """The deep link; the extra parameters keep the order they are given in."""
    return f"{WORKLINK}?{query([('action', action), (target, target_id), *pairs])}"


def deferred_url(link: str) -> str:
    """The link wrapped for devices without the app: WorkLink installs, then opens the link."""
    return f"{DEFERRED}?deep_link={encode(link)}"


def parameters(link: str) -> dict[str, str]:
    """Every query parameter of a link, decoded (a `deferred` link is unwrapped first)."""
    parts = urlsplit(link)
    found = dict(parse_qsl(parts.query, keep_blank_values=True))
    if f"{parts.scheme}://{parts.netloc}{parts.path}" == DEFERRED and "deep_link" in found:
        return parameters(found["deep_link"])
    return found


def external_data(link: str, target: str) -> dict[str, str]:
    """What WorkLink keeps as `externalData` from a link: every parameter but `action` and the target."""
    return {name: value for name, value in parameters(link).items() if name not in ("action", target)}
