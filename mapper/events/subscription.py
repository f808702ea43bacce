"""The subscription webhook: resource and action from X-Scope-Topic, the id from the default or a custom query body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mapper.events.event import CUSTOM_QUERY, SUBSCRIPTION, Parts, event_key
from mapper.events.reading import shown, text_of


def split_topic(topic: str, problems: list[str]) -> tuple[str | None, str | None]:
    """("scenario_session", "completed") from "scenario_session/completed", each part as sent."""
    resource, slash, action = topic.strip().rpartition("/")
    if not slash:
        problems.append(f"X-Scope-Topic {shown(topic)} has no '/' between resource type and action")
        return None, None
    resource, action = resource.strip(), action.strip()
    if not resource:
        problems.append(f"X-Scope-Topic {shown(topic)} names no resource type")
    if not action:
        problems.append(f"X-Scope-Topic {shown(topic)} names no action")
    return resource or None, action or None


def is_default_subscription_body(body: Mapping[Any, Any]) -> bool:
    data = body.get("data")
    if set(body) != {"data"} or not isinstance(data, Mapping):
        return False
    if not isinstance(data.get("id"), str) or not set(data) <= {"id", "url"}:
        return False
    url = data.get("url")
    return url is None or isinstance(url, str)


def subscription_ids(body: Mapping[Any, Any], parts: Parts, problems: list[str]) -> None:
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
    parts.resource_id = text_of(id_value, id_label, problems)
    parts.resource_url = text_of(url_value, url_label, problems)


def subscription(body: Any, topic: str | None, problems: list[str]) -> Parts:
    parts = Parts()
    if topic is not None:
        parts.resource_type, parts.raw_name = split_topic(topic, problems)
        parts.name = event_key(parts.raw_name) if parts.raw_name is not None else None
    if not isinstance(body, Mapping):
        return parts
    if is_default_subscription_body(body):
        parts.generation = SUBSCRIPTION
    else:
        parts.generation = CUSTOM_QUERY
        errors = body.get("errors")
        if errors:
            problems.append("custom query result carries errors")
        data = body.get("data")
        if isinstance(data, Mapping) and "node" in data and data["node"] is None:
            problems.append("custom query returned no node")
    subscription_ids(body, parts, problems)
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
