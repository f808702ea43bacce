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
    (HTTP basic auth). `text` replaces the forms one after another, longest first (a C-speed search per form
    beats one regex alternation by ~3x on a trace); excerpts find a secret at their cut with one compiled
    regex of all forms. Both are rebuilt only after `add`.
    """

    def __init__(
        self, secrets: Iterable[str] = (), sensitive_headers: Iterable[str] = (), sensitive_params: Iterable[str] = ()
    ) -> None:
        self._forms: set[str] = set()
        self._ordered: tuple[str, ...] = ()  # longest first
        self._risky: frozenset[str] = frozenset()  # forms whose masking may break JSON text (see json_text)
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
            self._ordered = tuple(sorted(self._forms, key=lambda form: (-len(form), form)))
            self._risky = frozenset(form for form in self._forms if not _inside_a_json_string(form))
            self._dirty = True

    @property
    def longest(self) -> int:
        """Length of the longest secret form: how far a secret can reach across a cut."""
        return self._longest

    def _compiled(self) -> re.Pattern[str] | None:
        if self._dirty:
            self._pattern = re.compile("|".join(re.escape(form) for form in self._ordered))
            self._dirty = False
        return self._pattern

    def text(self, s: str) -> str:
        if not s:
            return s
        for form in self._ordered:
            if form in s:
                s = s.replace(form, MASK)
        return s

    def json_text(self, s: str) -> tuple[str, bool]:
        """`text` over a JSON document, and whether the result is surely still JSON.

        A mask is surely harmless where the secret can only sit inside one string: the form holds a character
        that never appears outside strings, no quote or backslash, and no escape sequence (`\\uXXXX` at most)
        starts just before it. Otherwise the caller parses the result to find out.
        """
        valid = True
        for form in self._ordered:
            if form not in s:
                continue
            if valid:
                if form in self._risky:
                    valid = False
                else:
                    at = s.find(form)
                    while at >= 0:
                        if "\\" in s[max(0, at - 5) : at]:
                            valid = False
                            break
                        at = s.find(form, at + len(form))
            s = s.replace(form, MASK)
        return s, valid

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
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        # One pass over all values at once: a header value holds no line break, so "\n" keeps them apart
        # (a secret with a line break in it that spans two values masks both: the values are masked one by one).
        joined = "\n".join(value for _, value in pairs)
        shown_values = self.text(joined).split("\n")
        if len(shown_values) != len(pairs):
            shown_values = [self.text(value) for _, value in pairs]
        masked: dict[str, str] = {}
        for (name, value), shown in zip(pairs, shown_values, strict=True):
            key = name.lower()
            if key in self.sensitive_headers and not (key == "x-csrf-token" and value.lower() in _CSRF_WORDS):
                shown = MASK
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


# Every character that JSON text may hold outside strings: structure, whitespace, numbers, true/false/null.
_JSON_OUTSIDE_STRINGS = frozenset("{}[]:, \t\r\n0123456789+-.eEtruefalsn")


def _inside_a_json_string(form: str) -> bool:
    """Whether every match of `form` in JSON text lies inside one string (so masking keeps the text JSON)."""
    return '"' not in form and "\\" not in form and not set(form) <= _JSON_OUTSIDE_STRINGS


def _encoded_forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    return forms
