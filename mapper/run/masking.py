"""Secret masking: secrets (in every form they take on the wire) become `***`, other env values their name.

What is a secret is decided by whoever builds the Masker (see `run.secrets` for a mapping's env values); what
a request sends in a credential header and what a target hands out in `Set-Cookie` or a CSRF token header is
learnt here, on the way (`learn_sent`, `learn_received`), and stays a secret for as long as the client lives.
"""

from __future__ import annotations

import base64
import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values ("100", "on") would blank out ordinary text and hide nothing
MIN_LABEL_LENGTH = 8  # a short non-secret value ("0100") is clearer as it is than as a name in every number
LEARNT_LIMIT = 256  # secrets learnt from traffic (cookies, CSRF tokens) kept at once; the oldest go first

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
# `Authorization: <scheme> <credentials>`: the credentials alone are what a target may echo in a message.
_AUTH_SCHEMES = re.compile(r"(?i)^\s*(?:basic|bearer|token|digest|apikey|api-key|sharedaccesssignature)\s+(.+?)\s*$")
_TOKEN_EQUALS = re.compile(r"(?i)^token=(.+)$")  # Scope AR's `Token token=<token>`
# Names that say a variable holds a secret (the mapping may name others in `secrets:`).
_SECRET_NAME = re.compile(r"(?i)(?:^|_)(?:PASSWORD|PASSWD|PWD|TOKEN|SECRET|KEY|APIKEY|CREDENTIALS?)$")


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (`*_PASSWORD`, `*_TOKEN`, `*_SECRET`, `*_KEY`)."""
    return bool(_SECRET_NAME.search(name))


def hide_headers(pairs: Iterable[tuple[str, str]], sensitive: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Header pairs with the value of every credential header replaced by `***` (names and order kept)."""
    names = SENSITIVE_HEADERS | {name.lower() for name in sensitive}
    return [(name, MASK if name.lower() in names else value) for name, value in pairs]


class Masker:
    """Knows a set of secrets and of named values, and hides or names them wherever they appear.

    Every secret is also looked for in the forms it takes on the wire: percent-encoded (path and query
    style), JSON-escaped, base64 (standard and URL-safe, padded or not), and for user/password pairs told about
    with `add_basic`, base64 of `user:password` (HTTP basic auth); each becomes `***`. A *label* (an env
    value that is not a secret, such as a base URL) becomes `‹NAME›` in the same forms, so traces stay
    readable. `text` replaces the forms one after another, longest first (a C-speed search per form beats one
    regex alternation by ~3x on a trace); excerpts find a form at their cut with one compiled regex of all
    forms. Both are rebuilt only after something new is learnt.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        sensitive_headers: Iterable[str] = (),
        sensitive_params: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._lasting: dict[str, str] = {}  # form → what replaces it
        self._learnt: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # value → its forms, oldest first
        self._ordered: tuple[tuple[str, str], ...] = ()  # (form, replacement), longest first
        self._ordered_json: tuple[tuple[str, str], ...] = ()  # the same, the replacement as JSON-escaped ASCII
        self._risky: frozenset[str] = frozenset()  # forms whose masking may break JSON text (see json_text)
        self._pattern: re.Pattern[str] | None = None
        self._last_sent: tuple[tuple[str, str], ...] = ()
        self._dirty = False
        self._longest = 0
        self.sensitive_headers = SENSITIVE_HEADERS | {name.lower() for name in sensitive_headers}
        self.sensitive_params = SENSITIVE_PARAMS | {name.lower() for name in sensitive_params}
        for name, value in (labels or {}).items():
            self.label(name, value)
        for secret in secrets:
            self.add(secret)

    # -- what it knows ---------------------------------------------------------------------------------

    def add(self, secret: str) -> None:
        """A secret for as long as this masker lives."""
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        self._add_lasting(_secret_forms(secret), MASK)

    def add_basic(self, user: str, password: str) -> None:
        """A user/password pair: the password is a secret, and so is the base64 the pair becomes."""
        self.add(password)
        if len(password) >= MIN_SECRET_LENGTH:
            pair = base64.b64encode(f"{user}:{password}".encode("utf-8", "surrogatepass")).decode("ascii")
            self._add_lasting({pair, *_base64_forms(f"{user}:{password}")}, MASK)

    def label(self, name: str, value: str) -> None:
        """A value that is no secret but is shown by its name, `‹NAME›` (a secret's forms win over a label's)."""
        if not isinstance(value, str) or len(value) < MIN_LABEL_LENGTH:
            return
        self._add_lasting(_encoded_forms(value), f"‹{name}›")

    def remember(self, secret: str) -> None:
        """A secret learnt from traffic (a session cookie, a CSRF or OAuth2 token): kept while it is among the
        LEARNT_LIMIT most recent, so a long-lived client that sees a new token every hour does not grow forever."""
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        if secret in self._learnt:
            self._learnt.move_to_end(secret)
            return
        # Learnt values arrive already encoded for the wire (a cookie, a token): their base64 is not looked for.
        forms = tuple(form for form in _encoded_forms(secret) if self._lasting.get(form) != MASK)
        self._learnt[secret] = forms
        if len(self._learnt) > LEARNT_LIMIT:
            self._learnt.popitem(last=False)
            self._last_sent = ()  # what was sent may be what went: learn it again next time
        self._rebuild()

    def learn_sent(self, headers: Iterable[tuple[str, str]]) -> None:
        """What a request carries in credential headers is a secret, whoever built it (a step's own
        `Authorization: Basic {{ ... | b64encode }}` too): the whole value and the credentials after the scheme."""
        pairs = tuple(headers)
        if pairs == self._last_sent:  # a connection sends the same credentials request after request
            return
        self._last_sent = pairs
        for name, value in pairs:
            key = name.lower()
            if key not in self.sensitive_headers or (key == "x-csrf-token" and value.strip().lower() in _CSRF_WORDS):
                continue
            scheme = _AUTH_SCHEMES.match(value)
            if key == "cookie":
                for pair in value.split(";"):
                    self.remember(pair.strip().partition("=")[2])
            elif scheme:  # `Basic ***` says more than `***`, and hides as much
                credentials = scheme.group(1)
                token = _TOKEN_EQUALS.match(credentials)  # `Token token=***`
                self.remember(token.group(1).strip('"') if token else credentials)
            else:
                self.remember(value)

    def learn_received(self, headers: Iterable[tuple[str, str]], token_header: str = "x-csrf-token") -> None:
        """Session cookies (`Set-Cookie`) and CSRF tokens a target hands out are secrets from then on."""
        for name, value in headers:
            key = name.lower()
            if key == "set-cookie":
                for cookie in _cookie_values(value):
                    self.remember(cookie)
            elif key == token_header.lower() and value.strip().lower() not in _CSRF_WORDS:
                self.remember(value.strip())

    def _add_lasting(self, forms: Iterable[str], replacement: str) -> None:
        changed = False
        for form in forms:
            if len(form) < MIN_SECRET_LENGTH:
                continue
            known = self._lasting.get(form)
            if known in (replacement, MASK):  # a secret's form stays a secret
                continue
            self._lasting[form] = replacement
            changed = True
        if changed:
            self._rebuild()

    def _rebuild(self) -> None:
        replacements = dict(self._lasting)
        for forms in self._learnt.values():
            for form in forms:
                if len(form) >= MIN_SECRET_LENGTH:
                    replacements[form] = MASK
        self._ordered = tuple(sorted(replacements.items(), key=lambda item: (-len(item[0]), item[0])))
        # In JSON text a label goes in escaped (`\\u2039NAME\\u203a`): the text stays ASCII, which keeps every later
        # search over it at one byte per character, and reads back as `‹NAME›`.
        self._ordered_json = tuple((form, json.dumps(replacement)[1:-1]) for form, replacement in self._ordered)
        self._risky = frozenset(form for form in replacements if not _inside_a_json_string(form))
        self._longest = max((len(form) for form in replacements), default=0)
        self._dirty = True

    @property
    def longest(self) -> int:
        """Length of the longest secret form: how far a secret can reach across a cut."""
        return self._longest

    def _compiled(self) -> re.Pattern[str] | None:
        if self._dirty:
            self._pattern = re.compile("|".join(re.escape(form) for form, _ in self._ordered))
            self._dirty = False
        return self._pattern

    # -- hiding ----------------------------------------------------------------------------------------

    def text(self, s: str) -> str:
        if not s:
            return s
        for form, replacement in self._ordered:
            if form in s:
                s = s.replace(form, replacement)
        return s

    def json_text(self, s: str) -> tuple[str, bool]:
        """`text` over a JSON document, and whether the result is surely still JSON.

        A mask is surely harmless where the secret can only sit inside one string: the form holds a character
        that never appears outside strings, no quote or backslash, and no escape sequence (`\\uXXXX` at most)
        starts just before it. Otherwise the caller parses the result to find out.
        """
        valid = True
        for form, replacement in self._ordered_json:
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
            s = s.replace(form, replacement)
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
        if masked == decoded:
            return part
        return f"{name}={quote(masked, safe='*').replace('%E2%80%B9', '‹').replace('%E2%80%BA', '›')}"

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


def _encoded_forms(value: str) -> set[str]:
    """The value as it appears percent-encoded (path and query style) and inside a JSON string."""
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return forms


def _base64_forms(value: str) -> set[str]:
    """Base64 of the value's UTF-8 bytes, standard and URL-safe, without padding: the padded form starts with
    it, so masking it leaves `***==`, and one form less per secret is one search less per text."""
    raw = value.encode("utf-8", "surrogatepass")
    return {encoded.decode("ascii").rstrip("=") for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw))}


def _secret_forms(secret: str) -> set[str]:
    return _encoded_forms(secret) | _base64_forms(secret)


def _cookie_values(header: str) -> list[str]:
    """The values a `Set-Cookie` header sets (attributes such as Path and Expires are not secrets)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        name_value = header.split(";", 1)[0]
        return [name_value.partition("=")[2].strip()]
    return [morsel.value for morsel in jar.values()]
