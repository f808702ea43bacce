"""Database rows (tuples in the column order of `sql`) turned into store records, and back."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from mapper.service.store.records import AttemptRow, Claimed, DeliveryRow, Headers, JobRow, NewDelivery

MAX_REASON: Final = 2000  # characters of a reason kept in a row
MAX_TRACE: Final = 1_000_000  # characters of trace JSON kept per attempt


def headers_text(headers: Headers) -> str:
    """Headers as stored: a JSON list of [name, value] pairs, in the order and spelling received."""
    return json.dumps(headers)  # pairs (tuples) are JSON arrays


def superseded_reason(job: int) -> str:
    """Why a job that never started was coalesced."""
    return f"superseded by job {job}, a newer event for the same resource"


def delivery_values(d: NewDelivery, now: float, status: str, body: bytes, duplicate_of: int | None) -> tuple[Any, ...]:
    """A delivery row's values in sql.INSERT_DELIVERY's column order (received_at ... duplicate_of)."""
    return (
        now,
        storable(d.delivery_id),
        storable(d.dedupe_key),
        d.body_sha256,
        d.signature,
        storable(d.summary),
        headers_text(d.headers),
        body,
        status,
        duplicate_of,
        storable(d.notes) or None,
    )


def headers(text: str) -> Headers:
    return tuple((str(name), str(value)) for name, value in json.loads(text))


def storable(text: str | None) -> str | None:
    """Text every database can hold: JSON allows lone UTF-16 surrogates ("\\ud800") and NUL ("\\u0000"); UTF-8
    has no surrogates and PostgreSQL text no NUL. Both are kept as visible escapes, the same in every dialect."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def reason(text: str | None) -> str | None:
    """A reason cut to the length a row keeps."""
    text = storable(text)
    return text if text is None or len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def trace_text(trace: Mapping[str, Any] | str) -> str:
    """The runner's trace as stored JSON (text from the runner is ASCII JSON already); an oversized trace is
    replaced by a note saying so."""
    # ASCII-escaped: lone surrogates survive the round trip
    text = trace if isinstance(trace, str) else json.dumps(dict(trace), default=str)
    if len(text) > MAX_TRACE:
        return json.dumps({"truncated": f"the trace had {len(text)} characters; only {MAX_TRACE} are kept"})
    return text


def job(row: Sequence[Any]) -> JobRow:
    return JobRow(
        row[0],
        row[1],
        float(row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        float(row[8]),
        row[9],
        row[10],
        row[11],
        float(row[12]),
        float(row[13]),
        row[14],
    )


def delivery(row: Sequence[Any]) -> DeliveryRow:
    return DeliveryRow(
        row[0], float(row[1]), row[2], row[3], row[4], row[5], row[6], headers(row[7]), bytes(row[8]), row[9], row[10]
    )


def claimed(row: Sequence[Any]) -> Claimed:
    return Claimed(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        float(row[8]),
        headers(row[9]),
        bytes(row[10]),
        int(row[11]),
    )


def cut_reason(cuts: int, limit: int, wait: float) -> str:
    """Why a job whose attempt was cut short waits, runs again alone, or is parked."""
    times = "once" if cuts == 1 else f"{cuts} times"
    if cuts >= limit:
        return f"the process stopped {times} while running this job; parked so that the others can run"
    when = "at once" if wait <= 0 else f"in {wait:g} s"
    return (
        f"the process stopped (or stalled) {times} while running this job; it runs again {when}, alone "
        f"(dead after {limit})"
    )


def attempt(row: Sequence[Any]) -> AttemptRow:
    finished = None if row[3] is None else float(row[3])
    trace = None if row[7] is None else json.loads(row[7])
    return AttemptRow(row[0], row[1], float(row[2]), finished, row[4], row[5], row[6], trace)
