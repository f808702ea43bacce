"""normalise(): one raw delivery of either generation into an Event, never raising."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from mapper.events.event import UNKNOWN, Event, Parts
from mapper.events.legacy import has_legacy_field, legacy
from mapper.events.reading import header, kind_of, lower_headers, parse_body
from mapper.events.subscription import is_default_subscription_body, subscription, subscription_ids

_H_TOPIC: Final = "x-scope-topic"
_H_TOPIC_VERSION: Final = "x-scope-topic-version"
_H_WEBHOOK_ID: Final = "x-scope-webhook-id"
_H_DOMAIN: Final = "x-scope-domain"


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
    lowered = lower_headers(headers, problems)
    topic_present = _H_TOPIC in lowered
    topic = header(lowered, _H_TOPIC, problems)
    topic_version = header(lowered, _H_TOPIC_VERSION, problems)
    delivery_id = header(lowered, _H_WEBHOOK_ID, problems)
    domain = header(lowered, _H_DOMAIN, problems)

    parsed, payload = parse_body(body, problems)
    if parsed and not isinstance(payload, Mapping):
        problems.append(f"body is JSON but not an object (it is {kind_of(payload)})")

    if topic_present:
        parts = subscription(payload, topic, problems)
        if parts.generation != UNKNOWN and delivery_id is None:
            problems.append("no X-Scope-Webhook-Id header: duplicate deliveries cannot be detected")
    elif isinstance(payload, Mapping):
        if {"event", "type", "time"} & set(payload) or (
            isinstance(payload.get("data"), Mapping) and has_legacy_field(payload["data"])
        ):
            parts = legacy(payload, problems)
        else:
            parts = Parts()
            if is_default_subscription_body(payload):
                problems.append("body looks like a subscription webhook but there is no X-Scope-Topic header")
                subscription_ids(payload, parts, problems)
            else:
                problems.append("no X-Scope-Topic header and the body has no legacy fields (event, type, data)")
    else:
        parts = Parts()

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
