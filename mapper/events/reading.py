"""Reading the values of an untrusted delivery: text, headers and JSON, every oddity noted as a problem."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from mapper.events.event import type_key

_MAX_SHOWN: Final = 80  # longest value quoted back inside a problem note


def shown(value: str) -> str:
    text = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 3] + "..."
    return repr(text)


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def text_of(value: Any, label: str, problems: list[str]) -> str | None:
    """The value as text when that is sensible, else None; every oddity is noted in problems."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            problems.append(f"{label} is empty")
            return None
        return value
    if isinstance(value, bool):
        problems.append(f"{label} is a boolean, not text; ignored")
        return None
    if isinstance(value, int):
        try:
            text = str(value)
        except ValueError:  # more digits than int -> str conversion allows
            problems.append(f"{label} is a number too long to use; ignored")
            return None
        problems.append(f"{label} is a number, not text; used {text if len(text) <= _MAX_SHOWN else 'it'}")
        return text
    if isinstance(value, float):
        if not math.isfinite(value):
            problems.append(f"{label} is a non-finite number; ignored")
            return None
        text = repr(value)
        problems.append(f"{label} is a number, not text; used {text}")
        return text
    problems.append(f"{label} is {kind_of(value)}, not text; ignored")
    return None


def lower_headers(headers: Any, problems: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        items = list(headers.items())
    except Exception:  # not a mapping at all: keep going without headers
        problems.append("headers are not a mapping; ignored")
        return out
    for item in items:
        try:
            key, value = item
            if isinstance(key, bytes):
                key = key.decode("latin-1")
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            out[str(key).lower()] = str(value)
        except Exception:
            problems.append("a header could not be read; ignored")
    return out


def header(headers: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if not value.strip():
        problems.append(f"{name} header is empty")
        return None
    return value


def parse_body(body: Any, problems: list[str]) -> tuple[bool, Any]:
    """(parsed, payload): parsed is False when the body could not be read as JSON."""
    if body is None:
        problems.append("body is empty")
        return False, None
    if isinstance(body, bytearray | memoryview):
        body = bytes(body)
    if not isinstance(body, bytes | str):
        return True, body  # already-parsed JSON
    if not body.strip():
        problems.append("body is empty")
        return False, None
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8-sig")  # JSON on the wire is UTF-8 (RFC 8259); tolerate a BOM
        except UnicodeDecodeError as exc:
            problems.append(f"body is not JSON: not valid UTF-8 text ({exc.reason} at byte {exc.start})")
            return False, None
    try:
        return True, json.loads(body)
    except RecursionError:
        problems.append("body is not JSON: nested too deeply to parse")
    except ValueError as exc:  # json.JSONDecodeError, over-long integers
        problems.append(f"body is not JSON: {str(exc)[:200]}")
    return False, None


def norm_key(key: Any) -> str | None:
    return type_key(key) if isinstance(key, str) else None


def resource_field(data: Mapping[Any, Any], stem: str, problems: list[str]) -> Any:
    """data["resource-<stem>"], else data["resource_<stem>"], else any spelling like "resourceId"."""
    dashed, underscored = f"resource-{stem}", f"resource_{stem}"
    if dashed in data and underscored in data and data[dashed] != data[underscored]:
        problems.append(f"data has both {dashed} and {underscored} with different values; used {dashed}")
    if dashed in data:
        return data[dashed]
    if underscored in data:
        return data[underscored]
    wanted = "resource" + stem
    for key, value in data.items():
        if norm_key(key) == wanted:
            return value
    return None
