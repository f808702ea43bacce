"""Normalise one raw Scope AR WorkLink webhook (legacy or subscription) into the Event that mappings see."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

__all__ = ["EVENT_FIELDS", "GENERATIONS", "Event", "event_key", "normalise", "type_key"]

LEGACY: Final = "legacy"
SUBSCRIPTION: Final = "subscription"
CUSTOM_QUERY: Final = "custom-query"
UNKNOWN: Final = "unknown"
GENERATIONS: Final[tuple[str, ...]] = (LEGACY, SUBSCRIPTION, CUSTOM_QUERY, UNKNOWN)

# Present-tense spellings Scope has used, mapped to the past tense it uses elsewhere.
_PAST_TENSE: Final[Mapping[str, str]] = MappingProxyType(
    {"create": "created", "update": "updated", "delete": "deleted", "complete": "completed"}
)

_H_TOPIC: Final = "x-scope-topic"
_H_TOPIC_VERSION: Final = "x-scope-topic-version"
_H_WEBHOOK_ID: Final = "x-scope-webhook-id"
_H_DOMAIN: Final = "x-scope-domain"

_MAX_SHOWN: Final = 80  # longest value quoted back inside a problem note


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


# --------------------------------------------------------------------------------------------- helpers


def _shown(value: str) -> str:
    text = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 3] + "..."
    return repr(text)


def _kind(value: Any) -> str:
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


def _text(value: Any, label: str, problems: list[str]) -> str | None:
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
    problems.append(f"{label} is {_kind(value)}, not text; ignored")
    return None


def _lower_headers(headers: Any, problems: list[str]) -> dict[str, str]:
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


def _header(headers: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if not value.strip():
        problems.append(f"{name} header is empty")
        return None
    return value


def _parse_body(body: Any, problems: list[str]) -> tuple[bool, Any]:
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


def _norm_key(key: Any) -> str | None:
    return type_key(key) if isinstance(key, str) else None


def _field(data: Mapping[Any, Any], stem: str, problems: list[str]) -> Any:
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
        if _norm_key(key) == wanted:
            return value
    return None


def _has_legacy_field(data: Mapping[Any, Any]) -> bool:
    keys = {_norm_key(k) for k in data}
    return bool(keys & {"resourceid", "resourceurl", "resourcetype"})


def _split_topic(topic: str, problems: list[str]) -> tuple[str | None, str | None]:
    """("scenario_session", "completed") from "scenario_session/completed", each part as sent."""
    resource, slash, action = topic.strip().rpartition("/")
    if not slash:
        problems.append(f"X-Scope-Topic {_shown(topic)} has no '/' between resource type and action")
        return None, None
    resource, action = resource.strip(), action.strip()
    if not resource:
        problems.append(f"X-Scope-Topic {_shown(topic)} names no resource type")
    if not action:
        problems.append(f"X-Scope-Topic {_shown(topic)} names no action")
    return resource or None, action or None


# ----------------------------------------------------------------------------------------- generations


@dataclass
class _Parts:
    generation: str = UNKNOWN
    name: str | None = None
    raw_name: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    resource_url: str | None = None
    time: str | None = None


def _legacy(body: Mapping[Any, Any], problems: list[str]) -> _Parts:
    parts = _Parts(generation=LEGACY)
    parts.time = _text(body.get("time"), "time", problems)

    raw_event = body.get("event")
    if raw_event is None:
        problems.append("legacy webhook has no event")
    elif not isinstance(raw_event, str):
        problems.append(f"event is {_kind(raw_event)}, not text; ignored")
    elif not raw_event.strip():
        problems.append("event is empty")
    else:
        parts.raw_name = raw_event
        parts.name = event_key(raw_event)

    kind = body.get("type")
    if kind is None:
        problems.append("legacy webhook has no type")
    elif kind != "resource":
        shown = _shown(kind) if isinstance(kind, str) else _kind(kind)
        problems.append(f"type is {shown}, not 'resource'; data may have another shape")

    data = body.get("data")
    if data is None:
        problems.append("legacy webhook has no data")
    elif not isinstance(data, Mapping):
        problems.append(f"data is {_kind(data)}, not an object")
    else:
        raw_id, raw_url, raw_type = (_field(data, stem, problems) for stem in ("id", "url", "type"))
        if raw_id is None:
            problems.append("data has no resource-id")
        if raw_type is None:
            problems.append("data has no resource-type")
        parts.resource_id = _text(raw_id, "data.resource-id", problems)
        parts.resource_url = _text(raw_url, "data.resource-url", problems)
        parts.resource_type = _text(raw_type, "data.resource-type", problems)

    # "ScenarioSession.create": the docs name events this way; split it if Scope ever sends it so.
    if parts.raw_name is not None and "." in parts.raw_name:
        prefix, _, action = parts.raw_name.rpartition(".")
        if prefix.strip() and action.strip():
            parts.name = event_key(action)
            if parts.resource_type is None:
                parts.resource_type = prefix.strip()
            problems.append(f"event {_shown(parts.raw_name)} carries the resource type; used the part after '.'")
    return parts


def _is_default_subscription_body(body: Mapping[Any, Any]) -> bool:
    data = body.get("data")
    if set(body) != {"data"} or not isinstance(data, Mapping):
        return False
    if not isinstance(data.get("id"), str) or not set(data) <= {"id", "url"}:
        return False
    url = data.get("url")
    return url is None or isinstance(url, str)


def _subscription_ids(body: Mapping[Any, Any], parts: _Parts, problems: list[str]) -> None:
    data = body.get("data")
    if not isinstance(data, Mapping):
        return
    id_value, url_value = data.get("id"), data.get("url")
    id_label, url_label = "data.id", "data.url"
    node = data.get("node")
    if id_value is None and isinstance(node, Mapping):
        id_value, id_label = node.get("id"), "data.node.id"
    if url_value is None and isinstance(node, Mapping):
        url_value, url_label = node.get("url"), "data.node.url"
    parts.resource_id = _text(id_value, id_label, problems)
    parts.resource_url = _text(url_value, url_label, problems)


def _subscription(body: Any, topic: str | None, problems: list[str]) -> _Parts:
    parts = _Parts()
    if topic is not None:
        parts.resource_type, parts.raw_name = _split_topic(topic, problems)
        parts.name = event_key(parts.raw_name) if parts.raw_name is not None else None
    if not isinstance(body, Mapping):
        return parts
    if _is_default_subscription_body(body):
        parts.generation = SUBSCRIPTION
    else:
        parts.generation = CUSTOM_QUERY
        errors = body.get("errors")
        if errors:
            problems.append("custom query result carries errors")
        data = body.get("data")
        if isinstance(data, Mapping) and "node" in data and data["node"] is None:
            problems.append("custom query returned no node")
    _subscription_ids(body, parts, problems)
    if parts.resource_id is None and parts.generation == SUBSCRIPTION:
        problems.append("body has no data.id")
    if parts.resource_id is None and parts.generation == CUSTOM_QUERY and _unexplained(problems):
        # The subscription's query did not select `id` (or the node came back without one): nothing says
        # which resource this is, so a mapping that asks for it by `event.resource_id` has nothing to ask.
        problems.append("custom query result has no data.node.id (nor data.id): the webhook names no resource")
    return parts


def _unexplained(problems: list[str]) -> bool:
    """True unless a missing id is explained already (no node at all, or an id that was not usable)."""
    if "custom query returned no node" in problems:
        return False
    return not any(p.startswith(("data.id ", "data.node.id ")) for p in problems)


def normalise(body: bytes | str | Any, headers: Mapping[str, str]) -> Event:
    """Turn one webhook delivery into an Event. Never raises; oddities go into Event.problems.

    body is the raw request body (bytes or text) or JSON that was already parsed.
    """
    problems: list[str] = []
    try:
        return _normalise(body, headers, problems)
    except Exception as exc:  # a safety net: the rules above should make this unreachable
        problems.append(f"webhook could not be read: {type(exc).__name__}")
        return Event(UNKNOWN, None, None, None, None, None, None, None, None, None, None, tuple(problems))


def _normalise(body: Any, headers: Any, problems: list[str]) -> Event:
    lowered = _lower_headers(headers, problems)
    topic_present = _H_TOPIC in lowered
    topic = _header(lowered, _H_TOPIC, problems)
    topic_version = _header(lowered, _H_TOPIC_VERSION, problems)
    delivery_id = _header(lowered, _H_WEBHOOK_ID, problems)
    domain = _header(lowered, _H_DOMAIN, problems)

    parsed, payload = _parse_body(body, problems)
    if parsed and not isinstance(payload, Mapping):
        problems.append(f"body is JSON but not an object (it is {_kind(payload)})")

    if topic_present:
        parts = _subscription(payload, topic, problems)
        if parts.generation != UNKNOWN and delivery_id is None:
            problems.append("no X-Scope-Webhook-Id header: duplicate deliveries cannot be detected")
    elif isinstance(payload, Mapping):
        if {"event", "type", "time"} & set(payload) or (
            isinstance(payload.get("data"), Mapping) and _has_legacy_field(payload["data"])
        ):
            parts = _legacy(payload, problems)
        else:
            parts = _Parts()
            if _is_default_subscription_body(payload):
                problems.append("body looks like a subscription webhook but there is no X-Scope-Topic header")
                _subscription_ids(payload, parts, problems)
            else:
                problems.append("no X-Scope-Topic header and the body has no legacy fields (event, type, data)")
    else:
        parts = _Parts()

    return Event(
        generation=parts.generation,
        name=parts.name,
        raw_name=parts.raw_name,
        resource_type=parts.resource_type,
        resource_id=parts.resource_id,
        resource_url=parts.resource_url,
        topic=topic,
        topic_version=topic_version,
        time=parts.time,
        delivery_id=delivery_id,
        domain=domain,
        problems=tuple(problems),
        payload=payload,
        headers=MappingProxyType(lowered),
    )
