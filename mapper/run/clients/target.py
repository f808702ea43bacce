"""Where a request may go: base URL, joined paths, full URLs and headers, checked before anything is sent.

`path` arrives rendered and percent-encoded (inserted values cannot add segments, a query or a host); these
checks are the second line: whatever the path holds, the final URL keeps the base URL's scheme, host and port.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
from yarl import URL

from mapper.run.clients.errors import ConnectionUnusable, RequestRejected

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2: a header name or a method
FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_FORBIDDEN_IN_PATH = re.compile(r"[\x00-\x20\x7f\\#]")
# Left as they are in query values: OData wants `$filter`, `'` and `(...)` readable; a space becomes %20.
_QUERY_SAFE = "$'()*,:/@!"
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)
# What httpx.URL would percent-encode (non-ASCII, and these in a path or query): such a URL is normalised by
# httpx first, so it goes out as it did when httpx built every request.
_HTTPX_WOULD_QUOTE = re.compile(r'[^\x00-\x7f]|["<>`{}]')


def base_url(given: str, connection: str, *, query: bool) -> httpx.URL:
    """The connection's URL, read once; `query`: it may carry a query string (a GraphQL endpoint)."""
    problem = None
    try:
        url = httpx.URL(given)
    except httpx.InvalidURL:
        raise ConnectionUnusable(f"connection `{connection}`: the base URL is not a valid URL") from None
    if url.scheme not in ("http", "https"):
        problem = "must start with http:// or https://"
    elif not url.host:
        problem = "has no host"
    elif url.userinfo:
        problem = "must not contain a user name or password (use `auth`)"
    elif (url.query and not query) or url.fragment:
        problem = "must not contain a query string or fragment (use `params`)"
    if problem:
        raise ConnectionUnusable(f"connection `{connection}`: the base URL {problem}")
    return url


class Target(NamedTuple):
    """Where a request goes, checked but not yet parsed: the URL's text and the origin it must keep.

    `with_params` adds the query parameters of each attempt (auth may add one), parses the whole once and
    proves the origin (httpx.URL costs ~15 µs a URL and yarl's ~2 µs, and this is per request).
    """

    text: str
    origin: httpx.URL
    path: str  # the path the parameters must not change
    parsed_text: str | None = None  # `text` when `origin` is that very URL, parsed
    wire: URL | None = None  # that very URL as it goes on the wire (with `parsed_text`)


def join(base: httpx.URL, path: str) -> Target:
    """The base URL's path + `path` with exactly one `/` between; `with_params` proves the origin."""
    if _FORBIDDEN_IN_PATH.search(path):
        raise RequestRejected(
            "the path contains a space, control character, backslash or `#`; values in a path must be percent-encoded"
        )
    path_part, question, query = path.partition("?")
    relative = path_part[1:] if path_part.startswith("/") else path_part
    if "//" in path_part:
        raise RequestRejected("the path contains `//` (an empty segment, or an attempt to name another host)")
    if "@" in path_part:
        raise RequestRejected(
            "the path contains `@`, which some parsers read as a user name before a host; percent-encode it (%40)"
        )
    if _DOT_SEGMENT.search(path_part):
        raise RequestRejected("the path contains a `.` or `..` segment")
    base_path = base.raw_path.decode("ascii").partition("?")[0]
    joined = base_path if not path_part else base_path.rstrip("/") + "/" + relative
    candidate = f"{base.scheme}://{base.netloc.decode('ascii')}{joined}" + (f"?{query}" if question else "")
    return Target(candidate, base, joined)


def origin_of(url: httpx.URL) -> Target:
    """A parsed URL as a Target (a GraphQL endpoint, a step's own `url`)."""
    text = str(url)
    return Target(text, url, url.raw_path.decode("ascii").partition("?")[0], text, URL(text, encoded=True))


def full_url(given: str) -> Target:
    """A step's own `url`: any host, but only http(s) and never with credentials in it."""
    if _FORBIDDEN_IN_PATH.search(given.replace("#", "")):
        raise RequestRejected("the URL contains a space, control character or backslash")
    try:
        url = httpx.URL(given)
    except httpx.InvalidURL as exc:
        raise RequestRejected(f"the URL is not valid ({exc})") from None
    if url.scheme not in ("http", "https"):
        raise RequestRejected("the URL must start with http:// or https://")
    if not url.host:
        raise RequestRejected("the URL has no host")
    if url.userinfo:
        raise RequestRejected("the URL must not contain a user name or password (use the connection's `auth`)")
    return origin_of(url)


def with_params(target: Target, params: Sequence[tuple[str, str]]) -> URL:
    """The URL with params appended to its query as it is (httpx's `params=` would replace the query and
    re-encode `$filter`), parsed once as it goes on the wire; then proof that it still goes to the target's
    origin and path."""
    if not params and target.text is target.parsed_text and target.wire is not None:
        return target.wire  # the connection's own URL (a GraphQL endpoint), parsed once when it was read
    text = target.text
    if params:
        added = "&".join(f"{quote(key, safe=_QUERY_SAFE)}={quote(value, safe=_QUERY_SAFE)}" for key, value in params)
        text = f"{text}&{added}" if "?" in text else f"{text}?{added}"
    try:
        url = wire_url(text)
    except RequestRejected as exc:
        raise RequestRejected(f"the path does not make a valid URL ({exc.reason})") from None
    origin = target.origin
    port = url.explicit_port
    if (
        url.scheme != origin.scheme
        or url.raw_host != origin.raw_host.decode("ascii")
        or (port if port != _DEFAULT_PORTS.get(url.scheme) else None) != origin.port
        or url.raw_user is not None
    ):
        raise RequestRejected("the path would send the request to another host than the connection's base URL")
    if url.raw_path != target.path:
        raise RequestRejected("the query parameters would change where the request goes")
    return url


_DEFAULT_PORTS = {"http": 80, "https": 443}


def wire_url(text: str) -> URL:
    """A URL's text as it goes on the wire, taken as encoded (yarl would re-quote `$filter` and `'`); text that
    httpx.URL would change (non-ASCII, `"<>` ...) is normalised by httpx first, as when httpx built every
    request."""
    try:
        if _HTTPX_WOULD_QUOTE.search(text):
            text = str(httpx.URL(text))
        return URL(text, encoded=True)
    except (httpx.InvalidURL, ValueError) as exc:
        raise RequestRejected(str(exc) or "not a URL") from None


def checked_headers(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, raw in pairs:
        value = text(raw)
        if not TOKEN.fullmatch(name):
            raise RequestRejected(f"`{name!r}` is not a valid header name")
        if FORBIDDEN_IN_VALUE.search(value):
            raise RequestRejected(f"header `{name}` contains a line break or NUL; it was not sent")
        if not value.isascii():
            raise RequestRejected(f"header `{name}` contains characters outside ASCII; encode the value first")
        checked[name.lower()] = value
    return checked


def text(value: Any) -> str:
    """A rendered value as it goes on the wire: None is empty, booleans are JSON words."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)
