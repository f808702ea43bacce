"""Value conversions integrations need: ISO 8601, SAP OData v2 dates and times, durations, OData literals.

Plain functions over plain values; `expressions` offers them as Jinja filters and JMESPath functions.
Every function raises ConversionError (plain words) on a value it cannot convert.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any


class ConversionError(ValueError):
    pass


_SAP_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def to_datetime(value: Any) -> datetime:
    """A datetime (UTC when no zone is given) from ISO 8601 text, epoch seconds, SAP `/Date(ms)/` or a datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or value is None:
        raise ConversionError(f"{value!r} is not a date or time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConversionError(f"{value!r} is not a date or time")
        return _from_epoch(value, value)
    if isinstance(value, str):
        text = value.strip()
        match = _SAP_DATE.fullmatch(text)
        if match:  # the optional +hhmm is informational in OData v2: the milliseconds are UTC already
            return _from_epoch(int(match.group(1)) / 1000, value)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise ConversionError(f"'{value}' is not an ISO 8601 date or time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ConversionError(f"a {type(value).__name__} is not a date or time")


def _from_epoch(seconds: float, shown: Any) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ConversionError(f"{shown!r} is too far from 1970 to be a date") from None


def _utc(value: Any) -> datetime:
    try:
        return to_datetime(value).astimezone(UTC)
    except OverflowError:
        raise ConversionError(f"{value!r} is out of the range of dates") from None


def iso8601(value: Any) -> str:
    """`2024-05-01T10:00:00Z` (UTC, seconds precision)."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def maximo_datetime(value: Any) -> str:
    """`2024-05-01T10:00:00+00:00`: ISO 8601 with an explicit offset, as Maximo DATETIME attributes take."""
    return _utc(value).isoformat(timespec="seconds")


def sap_date(value: Any) -> str:
    """OData v2 Edm.DateTime: `/Date(1714557600000)/` (milliseconds since 1970, UTC)."""
    moment = _utc(value)
    return f"/Date({int(moment.timestamp() * 1000)})/"


def sap_time(value: Any) -> str:
    """OData v2 Edm.Time: `PT15H51M04S`, the time of day of a date-time (UTC)."""
    moment = _utc(value)
    return f"PT{moment.hour:02d}H{moment.minute:02d}M{moment.second:02d}S"


def seconds_of(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConversionError(f"{value!r} is not a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise ConversionError(f"'{value}' is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConversionError(f"{value!r} is not a number of seconds")
    return seconds


def duration_iso(value: Any) -> str:
    """Seconds → ISO 8601 duration, e.g. 754 → `PT12M34S`, 3600 → `PT1H`."""
    total = round(seconds_of(value))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{seconds}S" if seconds or text == "PT" else "")


def minutes(value: Any) -> float:
    """Seconds → minutes, e.g. 754 → 12.57 (two decimals)."""
    return round(seconds_of(value) / 60, 2)


def hours_minutes(value: Any) -> str:
    """Seconds → `H:MM`, e.g. 754 → `0:13` (rounded to the minute)."""
    total = round(seconds_of(value) / 60)
    return f"{total // 60}:{total % 60:02d}"


def odata_quote(value: Any) -> str:
    """An OData string literal: `'it''s'` (quotes doubled, as OData v2 key predicates need)."""
    if value is None or isinstance(value, bool | list | dict):
        raise ConversionError(f"{value!r} cannot be an OData string")
    return "'" + str(value).replace("'", "''") + "'"


# Salesforce SOQL: "The single quote (') and backslash (\) characters are reserved [...] and must be preceded by a
# backslash", plus the escapes for line breaks, tabs and quotes ("Reserved Characters" and "Quoted String Escape
# Sequences", SOQL and SOSL Reference). `%` and `_` stay as they are: they are wildcards only after LIKE.
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_SOQL_SPECIAL = re.compile("[\\\\'\"\n\r\t\b\f]")


def soql_quote(value: Any) -> str:
    """A SOQL string literal: `'O\\'Neil'` (quote and backslash escaped, as Salesforce WHERE clauses need)."""
    if value is None or isinstance(value, bool | list | dict):
        raise ConversionError(f"{value!r} cannot be a SOQL string")
    return "'" + _SOQL_SPECIAL.sub(lambda m: _SOQL_ESCAPES[m.group(0)], str(value)) + "'"


def truncate_text(value: Any, length: int) -> str:
    """Cut text to at most `length` characters (target fields have fixed maximum lengths)."""
    if isinstance(length, bool) or not isinstance(length, int):
        raise ConversionError(f"truncate_text needs a whole number of characters, not {length!r}")
    text = "" if value is None else str(value)
    return text if len(text) <= length else text[: max(0, length)]


def urlencode(value: Any) -> str:
    """Percent-encode everything but letters, digits and `-._~` (safe inside a path segment or a query value)."""
    if isinstance(value, dict):
        return urllib.parse.urlencode({str(k): str(v) for k, v in value.items()})
    return urllib.parse.quote(str(value), safe="")


def parse_duration(value: Any) -> float:
    """Seconds from a number or text like `500ms`, `5s`, `5m`, `2h`, `1d` (the mapping's duration format)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)", str(value).strip())
    if not match:
        raise ConversionError(f"'{value}' is not a duration (write e.g. 30s, 5m, 2h)")
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * unit


# A test case's `clock:` (mapper/rehearse): what `now()` returns while the case runs. A context variable, so it
# holds for that run alone (tasks inherit it) without threading a clock through every expression.
_FIXED_NOW: ContextVar[datetime | None] = ContextVar("wlmap_fixed_now", default=None)


def now() -> str:
    return iso8601(_FIXED_NOW.get() or datetime.now(UTC))


@contextmanager
def fixed_now(moment: str | None) -> Iterator[None]:
    """`now()` returns `moment` (ISO 8601) inside the block; None leaves the real time."""
    token = _FIXED_NOW.set(None if moment is None else to_datetime(moment))
    try:
        yield
    finally:
        _FIXED_NOW.reset(token)


def add_seconds(value: Any, seconds: Any) -> str:
    try:
        moment = to_datetime(value) + timedelta(seconds=seconds_of(seconds))
    except OverflowError:
        raise ConversionError(f"{value!r} plus {seconds!r} seconds is out of the range of dates") from None
    return iso8601(moment)


def from_json(value: Any) -> Any:
    """A JSON text decoded; a value that is not text is returned as it is, so `from_json(x)` accepts both.

    Scope AR does not document whether `externalData` arrives as an object or as JSON-encoded text.
    Text that is not JSON gives null (a missing value), never an error.
    """
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None
