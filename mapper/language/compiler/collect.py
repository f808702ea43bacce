"""`collect:` → the Collect record: how events are grouped into buckets, and when a bucket closes.

Each event's extracted values are one item; `group_by` and `distinct_by` read the event's names (after
`extract`), `until` reads the bucket (`items`, `group`). The steps of a collecting mapping run once per closed
bucket: they see `items`, `group` and `bucket`, and not the names of any one event (`steps_scope`).
"""

from __future__ import annotations

from typing import Any

from mapper.language import cron
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import Scope
from mapper.language.compiler.trigger import cron_expression, time_zone
from mapper.language.plan import MAX_ITEM_BYTES, MAX_ITEMS, MAX_OPEN_BUCKETS, Collect
from mapper.language.source import Path

PATH: Path = ("collect",)
BUCKET = {
    "items": "the bucket's items (each event's extracted values), in the order they came",
    "group": "the bucket's `group_by` value",
}
STEPS = {**BUCKET, "bucket": "the bucket: id, count, opened_at, closed_at, reason"}
PER_EVENT = "`{root}` belongs to one event, and the steps of a collecting mapping run once per bucket of events"
EXTRACTED_HINT = "use `items` (each event's extracted values, e.g. `items[].{root}`), `group` or `bucket`"
WEBHOOK_HINT = "extract what the steps need from it under `extract:`: each item holds the extracted values"


def collect(c: Compilation, data: Any, event_scope: Scope, extracted: list[str]) -> Collect | None:
    if not isinstance(data, dict):
        return None
    if not extracted:
        c.error(
            PATH,
            "`collect` puts each event's extracted values into a bucket, and this mapping extracts nothing",
            "add `extract:` with the values each item should hold",
            key=True,
        )
    group_by = c.query((*PATH, "group_by"), data.get("group_by"), event_scope) if "group_by" in data else None
    distinct = c.query((*PATH, "distinct_by"), data.get("distinct_by"), event_scope) if "distinct_by" in data else None
    close: dict[str, Any] = data["close"] if isinstance(data.get("close"), dict) else {}
    at = _at(c, close)
    until = None
    if "until" in close:
        until = c.query((*PATH, "close", "until"), close.get("until"), Scope(dict(BUCKET), place="until"))
    limits: dict[str, Any] = data["limits"] if isinstance(data.get("limits"), dict) else {}
    count = close.get("count")
    return Collect(
        c.doc.location(PATH),
        group_by,
        distinct,
        count if isinstance(count, int) and not isinstance(count, bool) else None,
        _positive_duration(c, (*PATH, "close", "window"), close.get("window")),
        _positive_duration(c, (*PATH, "close", "idle"), close.get("idle")),
        at,
        until,
        _whole(limits.get("items"), MAX_ITEMS),
        _whole(limits.get("open_buckets"), MAX_OPEN_BUCKETS),
        _whole(limits.get("item_bytes"), MAX_ITEM_BYTES),
    )


def _at(c: Compilation, close: dict[str, Any]) -> cron.Cron | None:
    if "at" not in close:
        if "timezone" in close:
            c.error(
                (*PATH, "close", "timezone"), "`timezone` is the time zone of `at`", "add `at:` or remove it", key=True
            )
        return None
    expression = cron_expression(c, (*PATH, "close", "at"), close.get("at"))
    zone = time_zone(c, (*PATH, "close", "timezone"), close.get("timezone"))
    return cron.Cron(expression, zone) if expression is not None and zone is not None else None


def _positive_duration(c: Compilation, path: Path, value: Any) -> float | None:
    if value is None:
        return None
    seconds = c.duration(path, value, -1.0)
    if seconds == 0:
        c.error(path, f"`{path[-1]}` must be longer than 0", "e.g. `5m`")
    return seconds if seconds > 0 else None


def _whole(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def steps_scope(extracted: list[str], webhook: list[str]) -> Scope:
    """The names the steps of a collecting mapping start from: the bucket's, and why an event's are not there."""
    absent: dict[str, tuple[str, str | None]] = {name: (PER_EVENT.format(root=name), WEBHOOK_HINT) for name in webhook}
    absent.update({name: (PER_EVENT.format(root=name), EXTRACTED_HINT.format(root=name)) for name in extracted})
    return Scope(dict(STEPS), place="data", absent=absent)
