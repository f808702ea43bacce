"""Tamper-evident links: an HMAC-SHA256 of the link's parameters, carried by the link as `sig`.

What is signed (docs/mapping.md, "Signed links"): the declared parameters the link carries, sorted by name
(Unicode code point order), written as a query string with `text.query` (`encodeURIComponent` encoding), e.g.
`complete=true&notification=10000123`. `action` and the target id are not signed: WorkLink does not keep them
in `externalData`, so nothing could check them. The HMAC is cut to its first 16 bytes (128 bits, which
RFC 2104 §5 allows: at least half the hash) and written as unpadded base64url, 22 characters, to keep the QR
code small.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence

from mapper.links.text import query

DIGEST_BYTES = 16


def keys_from(text: str | None) -> tuple[bytes, ...]:
    """The keys in WLMAP_LINK_KEY: comma-separated during a rotation, the newest last (it signs)."""
    return tuple(part.strip().encode() for part in (text or "").split(",") if part.strip())


def message(pairs: Iterable[tuple[str, str]]) -> bytes:
    return query(sorted(pairs)).encode()


def sign(pairs: Iterable[tuple[str, str]], key: bytes) -> str:
    digest = hmac.new(key, message(pairs), hashlib.sha256).digest()[:DIGEST_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def matches(pairs: Iterable[tuple[str, str]], signature: str, keys: Sequence[bytes]) -> bool:
    """Whether any key (old ones too, during a rotation) signed these pairs; compared in constant time."""
    listed = list(pairs)
    given = signature.encode("utf-8", "replace")
    return any(hmac.compare_digest(sign(listed, key).encode(), given) for key in keys)
