"""The Jinja environments templates run in: immutable sandbox, strict names, our filters, bounded `*`, `**`, range.

TEXT renders text and values; PATH renders a URL path, where every inserted value is percent-encoded, so
data cannot add segments, a query string or a host.
"""

from __future__ import annotations

import json
import operator
import urllib.parse
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mapper.language import conversions
from mapper.language.expressions.errors import EvaluationError
from mapper.language.expressions.limits import MAX_EXPONENT, MAX_RANGE, MAX_REPEAT

NULL_IN_TEXT = "a value inserted into the text is empty (null); write `{{ name or '' }}` if empty is fine there"


class EncodedText(str):
    """Text already percent-encoded by `urlencode`; a PATH template inserts it as it is."""


def _urlencode(value: Any) -> EncodedText:
    return EncodedText(conversions.urlencode(value))


def _text_finalize(value: Any) -> Any:
    # Jinja would write "None": in a work note that is a bug report, in a URL a wrong record.
    if value is None:
        raise EvaluationError(NULL_IN_TEXT)
    return value


def _path_finalize(value: Any) -> Any:
    if isinstance(value, EncodedText):
        return value
    if isinstance(value, Undefined):
        return value
    if value is None:
        raise EvaluationError(NULL_IN_TEXT)
    text = conversions.urlencode(value)
    if text in (".", ".."):
        raise EvaluationError(f"'{text}' cannot be a URL path segment")
    return text


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _checked_binop(op: str, left: Any, right: Any) -> Any:
    if op == "*":
        for sequence, count in ((left, right), (right, left)):
            repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int)
            if repeated and len(sequence) * count > MAX_REPEAT:
                raise SecurityError(f"repeating a value {count} times would make it longer than {MAX_REPEAT}")
        return operator.mul(left, right)
    if op == "**":
        if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed")
        if isinstance(left, int) and abs(left) > 1 and len(str(abs(left))) * abs(right) > 10_000:
            raise SecurityError("the result would have more than 10000 digits")
        return operator.pow(left, right)
    raise SecurityError(f"operator {op} is not allowed")


class Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return _checked_binop(operator, left, right)


FILTERS: dict[str, Callable[..., Any]] = {
    "urlencode": _urlencode,
    "tojson": _tojson,
    "iso8601": conversions.iso8601,
    "maximo_datetime": conversions.maximo_datetime,
    "sap_date": conversions.sap_date,
    "sap_time": conversions.sap_time,
    "duration_iso": conversions.duration_iso,
    "minutes": conversions.minutes,
    "hours_minutes": conversions.hours_minutes,
    "odata_quote": conversions.odata_quote,
    "soql_quote": conversions.soql_quote,
    "truncate_text": conversions.truncate_text,
    "from_json": conversions.from_json,
}
_UNSAFE_FILTERS = ("center", "indent", "wordwrap", "xmlattr", "pprint", "filesizeformat")


def _environment(finalize: Callable[[Any], Any]) -> Sandbox:
    env = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=finalize)
    for name in _UNSAFE_FILTERS:  # each can allocate far beyond its input from a small argument
        env.filters.pop(name, None)
    env.filters.update(FILTERS)
    env.globals.clear()
    env.globals["range"] = _bounded_range
    return env


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items")
    return result


def _odata_key(value: Any) -> EncodedText:
    """`odata_quote` inside a URL path: the quotes stay as they are (as SAP's own clients send them),
    the value between them is percent-encoded, so it still cannot add a segment or a query."""
    quoted = conversions.odata_quote(value)
    return EncodedText("'" + urllib.parse.quote(quoted[1:-1], safe="'") + "'")


TEXT = _environment(_text_finalize)
PATH = _environment(_path_finalize)
PATH.filters["odata_quote"] = _odata_key
FILTER_NAMES = frozenset(TEXT.filters)
