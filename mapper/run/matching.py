"""Does a mapping's trigger want this event? Yes, or no with the reason in words; and an index of many triggers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

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


_MAX_KEYS: Final = 1024  # event names and topics come from outside: the index keeps at most this many keys

Key = tuple[str | None, str | None, str | None, bool]  # event key, type key, topic, unsigned


class Triggers:
    """The webhook triggers of one loaded set of mappings, indexed by what they compare exactly.

    An event's key (its event name and resource type as comparison keys, its topic, and whether it came
    unsigned) picks its candidate mappings once per key; per event only the candidates' `when` runs, on one
    scope built for all of them. So 30 loaded mappings cost about what one does (bench/growth.py) instead of 30
    trigger checks, each building the event's scope again. The set is rebuilt whole when the mappings reload.
    """

    def __init__(self, plans: Iterable[Plan]) -> None:
        self.plans = tuple(plan for plan in plans if plan.trigger.schedule is None)
        self._candidates: dict[Key, tuple[Plan, ...]] = {}

    def select(self, event: Event, *, unsigned: bool = False) -> tuple[list[Plan], list[tuple[Plan, str]]]:
        """The mappings whose trigger matches, in load order; and those whose `when` failed, with the reason
        (see `match`: such a trigger does not match)."""
        name = event_key(event.name) if event.name else None
        kind = type_key(event.resource_type) if event.resource_type else None
        key = (name, kind, event.topic, unsigned)
        candidates = self._candidates.get(key)
        if candidates is None:
            candidates = tuple(plan for plan in self.plans if _wants(plan, key))
            if len(self._candidates) < _MAX_KEYS:
                self._candidates[key] = candidates
        matched: list[Plan] = []
        failed: list[tuple[Plan, str]] = []
        scope: dict[str, Any] | None = None
        for plan in candidates:
            when = plan.trigger.when
            if when is None:
                matched.append(plan)
                continue
            if scope is None:
                scope = webhook_scope(event)
            try:
                value = when.search(scope)
            except EvaluationError as exc:
                where = when.location
                failed.append((plan, f"trigger `when` could not be evaluated ({where}), so it does not match: {exc}"))
                continue
            if truthy(value):
                matched.append(plan)
        return matched, failed


def _wants(plan: Plan, key: Key) -> bool:
    """The trigger's exact comparisons (as in `match`), without its `when`."""
    name, kind, topic, unsigned = key
    trigger = plan.trigger
    return (
        (trigger.allow_unsigned or not unsigned)
        and (not trigger.events or name in trigger.events)
        and (not trigger.resource_types or kind in trigger.resource_types)
        and (not trigger.topics or topic in trigger.topics)
    )
