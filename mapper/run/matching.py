"""Does a mapping's trigger want this event? Yes, or no with the reason in words."""

from __future__ import annotations

from typing import Any

from mapper.events import Event, event_key, type_key
from mapper.language.expressions import EvaluationError
from mapper.language.plan import Plan


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; everything else (0 too) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def webhook_scope(event: Event) -> dict[str, Any]:
    return {"event": event.as_dict(), "headers": dict(event.headers), "payload": event.payload}


def match(plan: Plan, event: Event) -> tuple[bool, str]:
    trigger = plan.trigger
    if trigger.schedule is not None:
        return False, f"the mapping runs on a schedule ({trigger.schedule.cron}), not on webhooks"
    if trigger.events:
        name = event_key(event.name) if event.name else None
        if name not in trigger.events:
            return False, f"event `{event.name}` is not one of: {', '.join(sorted(trigger.events))}"
    if trigger.resource_types:
        kind = type_key(event.resource_type) if event.resource_type else None
        if kind not in trigger.resource_types:
            return (
                False,
                f"resource type `{event.resource_type}` is not one of: {', '.join(sorted(trigger.resource_types))}",
            )
    if trigger.topics and event.topic not in trigger.topics:
        return False, f"topic `{event.topic}` is not one of: {', '.join(sorted(trigger.topics))}"
    if trigger.when is not None:
        try:
            value = trigger.when.search(webhook_scope(event))
        except EvaluationError as exc:
            where = trigger.when.location
            return False, f"trigger `when` could not be evaluated ({where}), so it does not match: {exc}"
        if not truthy(value):
            return False, f"trigger `when` is false: {trigger.when.source}"
    return True, "matched"


def matching(plans: list[Plan], event: Event) -> list[Plan]:
    return [plan for plan in plans if match(plan, event)[0]]
