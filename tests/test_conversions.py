"""mapper.language.conversions: every conversion with worked examples (as in docs/mapping.md), and its refusals."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapper.language import conversions
from mapper.language.conversions import ConversionError

MAY_1 = 1714557600  # 2024-05-01T10:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z"),
        ("2024-05-01T10:00:00.123456Z", "2024-05-01T10:00:00Z"),
        ("2024-05-01T10:00:00", "2024-05-01T10:00:00Z"),  # no zone: UTC
        ("2024-05-01", "2024-05-01T00:00:00Z"),
        (" 2024-05-01T10:00:00Z ", "2024-05-01T10:00:00Z"),
        (MAY_1, "2024-05-01T10:00:00Z"),  # epoch seconds
        (float(MAY_1), "2024-05-01T10:00:00Z"),
        (f"/Date({MAY_1 * 1000})/", "2024-05-01T10:00:00Z"),  # SAP OData v2
        (f"/Date({MAY_1 * 1000}+0200)/", "2024-05-01T10:00:00Z"),  # the offset is informational
        (datetime(2024, 5, 1, 10, tzinfo=UTC), "2024-05-01T10:00:00Z"),
        (datetime(2024, 5, 1, 10), "2024-05-01T10:00:00Z"),
    ],
)
def test_iso8601(value: Any, expected: str) -> None:
    assert conversions.iso8601(value) == expected


def test_maximo_datetime_has_an_explicit_offset() -> None:
    assert conversions.maximo_datetime("2024-05-01T12:00:00+02:00") == "2024-05-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01", "/Date(1714521600000)/"),  # midnight UTC: how SAP wants an Edm.DateTime date
        ("2024-05-01T10:00:00Z", f"/Date({MAY_1 * 1000})/"),
        (MAY_1, f"/Date({MAY_1 * 1000})/"),
        ("1969-12-31T23:59:59Z", "/Date(-1000)/"),
    ],
)
def test_sap_date(value: Any, expected: str) -> None:
    assert conversions.sap_date(value) == expected


def test_sap_date_round_trips() -> None:
    assert conversions.iso8601(conversions.sap_date("2024-05-01T10:00:00Z")) == "2024-05-01T10:00:00Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T15:51:04Z", "PT15H51M04S"),
        ("2024-05-01T17:51:04+02:00", "PT15H51M04S"),  # the time of day in UTC
        ("2024-05-01", "PT00H00M00S"),
        (f"/Date({MAY_1 * 1000})/", "PT10H00M00S"),
    ],
)
def test_sap_time(value: Any, expected: str) -> None:
    assert conversions.sap_time(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (754, "PT12M34S"),
        (3600, "PT1H"),
        (3661, "PT1H1M1S"),
        (0, "PT0S"),
        (59.6, "PT1M"),
        ("90", "PT1M30S"),
        (90000, "PT25H"),
    ],
)
def test_duration_iso(seconds: Any, expected: str) -> None:
    assert conversions.duration_iso(seconds) == expected


@pytest.mark.parametrize(("seconds", "expected"), [(754, 12.57), (60, 1.0), (0, 0.0), ("30", 0.5)])
def test_minutes(seconds: Any, expected: float) -> None:
    assert conversions.minutes(seconds) == expected


@pytest.mark.parametrize(("seconds", "expected"), [(754, "0:13"), (3600, "1:00"), (5399, "1:30"), (0, "0:00")])
def test_hours_minutes(seconds: Any, expected: str) -> None:
    assert conversions.hours_minutes(seconds) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("it's", "'it''s'"), ("10000123", "'10000123'"), (42, "'42'"), ("", "''")]
)
def test_odata_quote(value: Any, expected: str) -> None:
    assert conversions.odata_quote(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00001042", "'00001042'"),
        ("O'Neil", "'O\\'Neil'"),
        ("a\\b", "'a\\\\b'"),
        ('say "hi"', "'say \\\"hi\\\"'"),
        ("two\nlines\t", "'two\\nlines\\t'"),
        ("50%_off", "'50%_off'"),  # wildcards only after LIKE: left as they are
        (42, "'42'"),
        ("", "''"),
    ],
)
def test_soql_quote(value: Any, expected: str) -> None:
    assert conversions.soql_quote(value) == expected


def _read_soql_literal(literal: str) -> str:
    """A SOQL string literal read back as Salesforce documents it ("Quoted String Escape Sequences")."""
    assert literal[0] == literal[-1] == "'"
    escapes = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
    out, inside, index = [], literal[1:-1], 0
    while index < len(inside):
        char = inside[index]
        assert char != "'", f"an unescaped quote ends the literal early: {literal!r}"
        if char == "\\":
            out.append(escapes[inside[index + 1]])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


@given(st.text())
def test_soql_quote_reads_back(text: str) -> None:
    assert _read_soql_literal(conversions.soql_quote(text)) == text


@pytest.mark.parametrize(
    ("value", "length", "expected"),
    [("abcdef", 3, "abc"), ("abc", 10, "abc"), (None, 3, ""), (12345, 2, "12"), ("abc", 0, ""), ("abc", -1, "")],
)
def test_truncate_text(value: Any, length: int, expected: str) -> None:
    assert conversions.truncate_text(value, length) == expected


def test_truncate_text_needs_a_whole_number() -> None:
    with pytest.raises(ConversionError, match="whole number"):
        conversions.truncate_text("abc", "2")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a/b c", "a%2Fb%20c"),
        ("INC0010001", "INC0010001"),
        ("é", "%C3%A9"),
        ("a+b=c&d", "a%2Bb%3Dc%26d"),
        ("..", ".."),
        ({"a": 1, "b": "x y"}, "a=1&b=x+y"),
        ("U2Nl/+=", "U2Nl%2F%2B%3D"),
    ],
)
def test_urlencode(value: Any, expected: str) -> None:
    assert conversions.urlencode(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500ms", 0.5),
        ("5s", 5.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5m", 90.0),
        (30, 30.0),
        (2.5, 2.5),
        (" 10s ", 10.0),
    ],
)
def test_parse_duration(value: Any, expected: float) -> None:
    assert conversions.parse_duration(value) == expected


@pytest.mark.parametrize("value", ["30 seconds", "5 m", "2.50", "PT5M", "", "-5s", "5x"])
def test_parse_duration_refuses(value: str) -> None:
    with pytest.raises(ConversionError, match="not a duration"):
        conversions.parse_duration(value)


def test_add_seconds() -> None:
    assert conversions.add_seconds("2024-05-01T10:00:00Z", 90) == "2024-05-01T10:01:30Z"


def test_now_is_utc_iso8601() -> None:
    text = conversions.now()
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=5)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        "yesterday",
        "2024-13-01",
        "/Date(abc)/",
        [],
        {},
        math.nan,
        math.inf,
        1e20,
        "/Date(99999999999999999999)/",
    ],
)
def test_dates_refused_in_plain_words(value: Any) -> None:
    with pytest.raises(ConversionError) as caught:
        conversions.iso8601(value)
    assert "date" in str(caught.value)


@pytest.mark.parametrize("value", [None, True, "abc", -1, math.nan, math.inf, [], "inf"])
def test_seconds_refused(value: Any) -> None:
    with pytest.raises(ConversionError, match="seconds"):
        conversions.duration_iso(value)


@pytest.mark.parametrize("value", [None, True, [], {}])
def test_odata_quote_refuses_non_scalars(value: Any) -> None:
    with pytest.raises(ConversionError, match="OData"):
        conversions.odata_quote(value)
    with pytest.raises(ConversionError, match="SOQL"):
        conversions.soql_quote(value)


def test_edges_of_the_calendar_are_conversion_errors() -> None:
    with pytest.raises(ConversionError):
        conversions.iso8601(datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))))
    with pytest.raises(ConversionError):
        conversions.add_seconds("9999-12-31T23:59:59Z", 86400)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1)))
def test_every_date_format_agrees(moment: datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    text = conversions.iso8601(moment)
    assert conversions.iso8601(conversions.sap_date(text)) == text
    assert conversions.iso8601(conversions.maximo_datetime(text)) == text
    assert conversions.iso8601(moment.timestamp()) == text
    assert conversions.sap_time(text) == f"PT{moment.hour:02d}H{moment.minute:02d}M{moment.second:02d}S"


@given(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.lists(st.integers()), st.datetimes())
)
def test_conversions_raise_only_conversion_errors(value: Any) -> None:
    for convert in (
        conversions.iso8601,
        conversions.maximo_datetime,
        conversions.sap_date,
        conversions.sap_time,
        conversions.duration_iso,
        conversions.minutes,
        conversions.hours_minutes,
        conversions.odata_quote,
        conversions.soql_quote,
        conversions.parse_duration,
    ):
        try:
            result = convert(value)
        except ConversionError:
            continue
        assert isinstance(result, str | float)


@given(st.integers(min_value=0, max_value=10**7))
def test_duration_iso_reads_back(seconds: int) -> None:
    text = conversions.duration_iso(seconds)
    parts = dict.fromkeys("HMS", 0) | {unit: int(number) for number, unit in re.findall(r"(\d+)([HMS])", text)}
    assert parts["H"] * 3600 + parts["M"] * 60 + parts["S"] == seconds
