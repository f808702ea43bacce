"""Where a request may go: base URL, joined paths, full URLs and headers, checked before anything is sent.

`path` arrives rendered and percent-encoded (inserted values cannot add segments, a query or a host); these
checks are the second line: whatever the path holds, the final URL keeps the base URL's scheme, host and port.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from mapper.clients.errors import ConnectionUnusable, RequestRejected

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2: a header name or a method
FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_FORBIDDEN_IN_PATH = re.compile(r"[\x00-\x20\x7f\\#]")
# Left as they are in query values: OData wants `$filter`, `'` and `(...)` readable; a space becomes %20.
_QUERY_SAFE = "$'()*,:/@!"
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


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


def join(base: httpx.URL, path: str) -> httpx.URL:
    """The base URL's path + `path` with exactly one `/` between, then proof the origin did not change."""
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
    try:
        final = httpx.URL(candidate)
    except httpx.InvalidURL as exc:
        raise RequestRejected(f"the path does not make a valid URL ({exc})") from None
    if (final.scheme, final.host, final.port) != (base.scheme, base.host, base.port) or final.userinfo:
        raise RequestRejected("the path would send the request to another host than the connection's base URL")
    return final


def full_url(given: str) -> httpx.URL:
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
    return url


def with_params(url: httpx.URL, params: Sequence[tuple[str, str]]) -> httpx.URL:
    """Append params to the URL's query as it is (httpx's `params=` replaces it and re-encodes `$filter`)."""
    if not params:
        return url
    added = "&".join(f"{quote(key, safe=_QUERY_SAFE)}={quote(value, safe=_QUERY_SAFE)}" for key, value in params)
    # One parse of the whole string: `copy_with` re-parses every component (~15 µs a URL, per request).
    whole = str(url)
    joined = httpx.URL(f"{whole}&{added}" if url.query else f"{whole}?{added}")
    if (joined.scheme, joined.host, joined.port, joined.raw_path.partition(b"?")[0]) != (
        url.scheme,
        url.host,
        url.port,
        url.raw_path.partition(b"?")[0],
    ):
        raise RequestRejected("the query parameters would change where the request goes")
    return joined


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
