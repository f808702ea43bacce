"""Secret masking: known secret values (and their encoded forms) become `***` in text, headers, URLs, data."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values ("100", "on") would blank out ordinary text and hide nothing

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-csrf-token",
        "apikey",
        "api-key",
        "x-api-key",
    }
)
SENSITIVE_PARAMS = frozenset(
    {
        "token",
        "access_token",
        "apikey",
        "api_key",
        "key",
        "password",
        "secret",
        "client_secret",
        "sig",
        "signature",
    }
)
# SAP's CSRF handshake words are not secrets, and a trace that hides them hides the handshake.
_CSRF_WORDS = frozenset({"fetch", "required"})


class Masker:
    """Knows a set of secrets and hides them wherever they appear.

    Every secret is also looked for in the forms it takes on the wire: percent-encoded (path and query
    style), JSON-escaped, and for user/password pairs told about with `add_basic`, base64 of `user:password`
    (HTTP basic auth). All forms go into one compiled regex, longest first, rebuilt only after `add`.
    """

    def __init__(
        self, secrets: Iterable[str] = (), sensitive_headers: Iterable[str] = (), sensitive_params: Iterable[str] = ()
    ) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False
        self._longest = 0
        self.sensitive_headers = SENSITIVE_HEADERS | {name.lower() for name in sensitive_headers}
        self.sensitive_params = SENSITIVE_PARAMS | {name.lower() for name in sensitive_params}
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        self._add_forms(_encoded_forms(secret))

    def add_basic(self, user: str, password: str) -> None:
        """A user/password pair: the password is a secret, and so is the base64 the pair becomes."""
        self.add(password)
        pair = f"{user}:{password}".encode()
        self._add_forms({base64.b64encode(pair).decode("ascii")})

    def _add_forms(self, forms: Iterable[str]) -> None:
        new = {form for form in forms if len(form) >= MIN_SECRET_LENGTH} - self._forms
        if new:
            self._forms |= new
            self._longest = max(self._longest, *(len(form) for form in new))
            self._dirty = True

    @property
    def longest(self) -> int:
        """Length of the longest secret form: how far a secret can reach across a cut."""
        return self._longest

    def _compiled(self) -> re.Pattern[str] | None:
        if self._dirty:
            ordered = sorted(self._forms, key=lambda form: (-len(form), form))
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered))
            self._dirty = False
        return self._pattern

    def text(self, s: str) -> str:
        pattern = self._compiled()
        if pattern is None or not s:
            return s
        return pattern.sub(MASK, s)

    def excerpt(self, s: str, limit: int) -> str:
        """At most `limit` characters of `s`, masked, with no part of a secret left at the cut."""
        if len(s) <= limit:
            return self.text(s)
        cut = limit
        pattern = self._compiled()
        if pattern is not None:
            # A secret that straddles the cut would otherwise leave its first characters in the excerpt.
            for match in pattern.finditer(s, max(0, limit - self._longest), limit + self._longest):
                if match.start() < limit < match.end():
                    cut = match.end()
                    break
        return self.text(s[:cut])[: max(0, limit - 1)] + "…"

    def headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
        """Header values with credentials replaced; names are lower-cased."""
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        masked: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self.sensitive_headers and not (key == "x-csrf-token" and value.lower() in _CSRF_WORDS):
                shown = MASK
            else:
                shown = self.text(value)
            masked[key] = f"{masked[key]}, {shown}" if key in masked else shown
        return masked

    def url(self, u: str) -> str:
        """The URL without userinfo, without the values of credential-like query parameters, then `text`."""
        try:
            parts = urlsplit(u)
        except ValueError:
            return self.text(u)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
        query = "&".join(self._query_part(part) for part in parts.query.split("&")) if parts.query else ""
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))

    def _query_part(self, part: str) -> str:
        name, equals, value = part.partition("=")
        if not equals:
            return part
        if (unquote_plus(name) if "%" in name or "+" in name else name).lower() in self.sensitive_params:
            return f"{name}={MASK}"
        if "%" not in value and "+" not in value:
            return part  # nothing encoded: the final `text` over the whole URL sees it as it is
        # Whatever encoder built the query, the decoded value shows a secret if there is one.
        decoded = unquote_plus(value)
        masked = self.text(decoded)
        return part if masked == decoded else f"{name}={quote(masked, safe='*')}"

    def value(self, v: Any) -> Any:
        """A copy of a JSON-like value with every string (keys too) masked."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            return {self.text(k) if isinstance(k, str) else k: self.value(item) for k, item in v.items()}
        if isinstance(v, list | tuple):
            return [self.value(item) for item in v]
        return v


def _encoded_forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    return forms
