"""`trigger:` → which webhooks run the mapping (events, resource types, topics, a `when` condition), or a schedule."""

from __future__ import annotations

from typing import Any

from mapper.events import event_key, type_key
from mapper.language import cron
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import Scope
from mapper.language.plan import MissedRuns, Schedule, Trigger
from mapper.language.source import Path

PATH: Path = ("trigger",)
WEBHOOK_KEYS = ("events", "resource_types", "topics", "when")


def trigger(c: Compilation, data: Any, scope: Scope) -> Trigger | None:
    if not isinstance(data, dict):
        return None
    if "schedule" in data:
        return _scheduled(c, data)
    for key in ("timezone", "missed"):
        if key in data:
            c.error((*PATH, key), f"`{key}` belongs to a schedule", "add `schedule:` or remove it", key=True)
    events = [str(e) for e in _list(data.get("events")) if isinstance(e, str | int)]
    types = [str(t) for t in _list(data.get("resource_types")) if isinstance(t, str)]
    topics = [str(t) for t in _list(data.get("topics")) if isinstance(t, str)]
    for index, topic in enumerate(topics):
        if "/" not in topic:
            c.warning(
                (*PATH, "topics", index),
                f"`{topic}` does not look like a topic (`resource/action`)",
                "topics look like `scenario_session/completed`",
            )
    when = c.query((*PATH, "when"), data.get("when"), scope) if "when" in data else None
    return Trigger(
        c.doc.location(PATH),
        frozenset(event_key(e) for e in events),
        frozenset(type_key(t) for t in types),
        frozenset(topics),
        when,
        data.get("allow_unsigned") is True,
    )


def _scheduled(c: Compilation, data: dict[str, Any]) -> Trigger | None:
    """`schedule:` (with `timezone:` and `missed:`): the mapping runs at these times and on no webhook."""
    for key in WEBHOOK_KEYS:
        if key in data:
            c.error(
                (*PATH, key),
                f"a scheduled mapping runs on no webhook, so it takes no `{key}`",
                "keep `schedule:` (and `timezone:`, `missed:`), or make two mappings",
                key=True,
            )
    expression = cron_expression(c, (*PATH, "schedule"), data.get("schedule"))
    zone = time_zone(c, (*PATH, "timezone"), data.get("timezone"))
    if expression is None or zone is None:
        return None
    missed: MissedRuns = "skip" if data.get("missed") == "skip" else "run_once"
    schedule = Schedule(c.doc.location((*PATH, "schedule")), cron.Cron(expression, zone), missed)
    return Trigger(c.doc.location(PATH), schedule=schedule)


def cron_expression(c: Compilation, path: Path, value: Any) -> str | None:
    """The cron expression at `path`, checked (a located problem in words when it is not usable)."""
    if not isinstance(value, str) or not value.strip():
        return None  # the schema check has said so
    problem = cron.check(value)
    if problem is not None:
        c.error(
            path, problem.message, problem.hint, location=c.doc.location_in_scalar(path, problem.offset, problem.width)
        )
        return None
    return value.strip()


def time_zone(c: Compilation, path: Path, value: Any) -> str | None:
    """The time zone at `path` (UTC when none is given); None when it is not one this machine knows."""
    if value is None:
        return "UTC"
    if not isinstance(value, str):
        return None
    hint = cron.zone_problem(value)
    if hint is not None:
        c.error(path, f"`{value}` is not a time zone", hint)
        return None
    return value


def _list(value: Any) -> list[Any]:
    """A list from the YAML, or nothing (the schema check reports any other type)."""
    return value if isinstance(value, list) else []
