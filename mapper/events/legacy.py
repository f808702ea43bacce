"""The legacy (org-wide) webhook: `{time, event, type, data: {resource-id, resource-url, resource-type}}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mapper.events.event import LEGACY, Parts, event_key
from mapper.events.reading import kind_of, norm_key, resource_field, shown, text_of


def has_legacy_field(data: Mapping[Any, Any]) -> bool:
    keys = {norm_key(k) for k in data}
    return bool(keys & {"resourceid", "resourceurl", "resourcetype"})


def legacy(body: Mapping[Any, Any], problems: list[str]) -> Parts:
    parts = Parts(generation=LEGACY)
    parts.time = text_of(body.get("time"), "time", problems)

    raw_event = body.get("event")
    if raw_event is None:
        problems.append("legacy webhook has no event")
    elif not isinstance(raw_event, str):
        problems.append(f"event is {kind_of(raw_event)}, not text; ignored")
    elif not raw_event.strip():
        problems.append("event is empty")
    else:
        parts.raw_name = raw_event
        parts.name = event_key(raw_event)

    kind = body.get("type")
    if kind is None:
        problems.append("legacy webhook has no type")
    elif kind != "resource":
        described = shown(kind) if isinstance(kind, str) else kind_of(kind)
        problems.append(f"type is {described}, not 'resource'; data may have another shape")

    data = body.get("data")
    if data is None:
        problems.append("legacy webhook has no data")
    elif not isinstance(data, Mapping):
        problems.append(f"data is {kind_of(data)}, not an object")
    else:
        raw_id, raw_url, raw_type = (resource_field(data, stem, problems) for stem in ("id", "url", "type"))
        if raw_id is None:
            problems.append("data has no resource-id")
        if raw_type is None:
            problems.append("data has no resource-type")
        parts.resource_id = text_of(raw_id, "data.resource-id", problems)
        parts.resource_url = text_of(raw_url, "data.resource-url", problems)
        parts.resource_type = text_of(raw_type, "data.resource-type", problems)

    # "ScenarioSession.create": the docs name events this way; split it if Scope ever sends it so.
    if parts.raw_name is not None and "." in parts.raw_name:
        prefix, _, action = parts.raw_name.rpartition(".")
        if prefix.strip() and action.strip():
            parts.name = event_key(action)
            if parts.resource_type is None:
                parts.resource_type = prefix.strip()
            problems.append(f"event {shown(parts.raw_name)} carries the resource type; used the part after '.'")
    return parts
