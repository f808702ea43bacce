"""`trigger:` → which webhooks run the mapping: events, resource types, topics, and a `when` condition."""

from __future__ import annotations

from typing import Any

from mapper.events import event_key, type_key
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import Scope
from mapper.language.plan import Trigger
from mapper.language.source import Path

PATH: Path = ("trigger",)


def trigger(c: Compilation, data: Any, scope: Scope) -> Trigger | None:
    if not isinstance(data, dict):
        return None
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


def _list(value: Any) -> list[Any]:
    """A list from the YAML, or nothing (the schema check reports any other type)."""
    return value if isinstance(value, list) else []
