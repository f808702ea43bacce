"""The Event that mappings see, the generations of webhook, and the comparison keys of names and types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

LEGACY: Final = "legacy"
SUBSCRIPTION: Final = "subscription"
CUSTOM_QUERY: Final = "custom-query"
UNKNOWN: Final = "unknown"
GENERATIONS: Final[tuple[str, ...]] = (LEGACY, SUBSCRIPTION, CUSTOM_QUERY, UNKNOWN)

# Present-tense spellings Scope has used, mapped to the past tense it uses elsewhere.
_PAST_TENSE: Final[Mapping[str, str]] = MappingProxyType(
    {"create": "created", "update": "updated", "delete": "deleted", "complete": "completed"}
)


@dataclass(frozen=True)
class Event:
    """One webhook delivery, whatever its generation, as mappings see it."""

    generation: str
    name: str | None
    raw_name: str | None
    resource_type: str | None
    resource_id: str | None
    resource_url: str | None
    topic: str | None
    topic_version: str | None
    time: str | None
    delivery_id: str | None
    domain: str | None
    problems: tuple[str, ...]
    payload: Any = field(default=None, hash=False, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The event as JMESPath/Jinja see it: every field except payload and headers."""
        out: dict[str, Any] = {name: getattr(self, name) for name in EVENT_FIELDS}
        out["problems"] = list(self.problems)
        return out


EVENT_FIELDS: Final[tuple[str, ...]] = (
    "generation",
    "name",
    "raw_name",
    "resource_type",
    "resource_id",
    "resource_url",
    "topic",
    "topic_version",
    "time",
    "delivery_id",
    "domain",
    "problems",
)


def type_key(resource_type: str) -> str:
    """Comparison key for a resource type: "scenario_session" == "ScenarioSession" == "scenario-session"."""
    key = resource_type.lower()
    for sep in ("_", "-", " "):
        key = key.replace(sep, "")
    return key


def event_key(name: str) -> str:
    """Comparison key for an event name: "create", "Created" and "created" all give "created"."""
    key = name.strip().lower().strip()
    return _PAST_TENSE.get(key, key)


@dataclass
class Parts:
    """What one generation's reader found in a delivery, before it becomes an Event."""

    generation: str = UNKNOWN
    name: str | None = None
    raw_name: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    resource_url: str | None = None
    time: str | None = None
