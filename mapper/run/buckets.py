"""Collecting and scheduled runs: what one event puts in a bucket, what a bucket's or a schedule's run is given,
and each closing rule in the words a closed bucket records. The service, the runner and rehearsals share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mapper.language.cron import Cron, iso
from mapper.language.expressions import EvaluationError
from mapper.language.plan import Collect, Plan
from mapper.run.matching import truthy


class NotCollected(Exception):
    """The event's item cannot go into a bucket (too big, a group that is not JSON); the words say why."""


@dataclass(frozen=True)
class Collected:
    """One event's item: its group, its values (the extracted ones) and its distinct key, as data and as JSON."""

    group: Any
    value: dict[str, Any]
    distinct: Any = None
    group_text: str = "null"
    value_text: str = "{}"
    distinct_text: str | None = None

    @property
    def size(self) -> int:
        return len(self.value_text.encode())


@dataclass(frozen=True)
class Bucket:
    """A closed bucket, as its run sees it: `items`, `group` and `bucket` in the steps' scope."""

    id: int
    group: Any
    items: list[Any]
    reason: str
    opened_at: float
    closed_at: float

    def scope(self) -> dict[str, Any]:
        about = {
            "id": self.id,
            "count": len(self.items),
            "opened_at": iso(self.opened_at),
            "closed_at": iso(self.closed_at),
            "reason": self.reason,
        }
        return {"items": self.items, "group": self.group, "bucket": about}


@dataclass(frozen=True)
class Window:
    """A scheduled run: `since` (the previous run's time) and `until` (this run's), as ISO 8601 UTC."""

    until: float
    since: float | None = None
    missed: int = 0  # due times missed while no wlmap ran, covered by this run

    def scope(self) -> dict[str, Any]:
        return {"since": None if self.since is None else iso(self.since), "until": iso(self.until)}


def canonical(value: Any) -> str:
    """JSON text that is the same for equal values (keys sorted): how groups and distinct keys are compared."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def item_from(plan: Plan, values: dict[str, Any], scope: dict[str, Any]) -> Collected:
    """The item of one event: its extracted `values`, grouped by `group_by` over `scope` (the event's names).

    Raises EvaluationError when `group_by` or `distinct_by` fails on this event, NotCollected when the item
    is over its size limit or a value is not JSON."""
    collect = plan.collect
    assert collect is not None
    group = collect.group_by.search(scope) if collect.group_by is not None else None
    distinct = collect.distinct_by.search(scope) if collect.distinct_by is not None else None
    try:
        group_text, value_text = canonical(group), json.dumps(values, ensure_ascii=False, separators=(",", ":"))
        distinct_text = None if distinct is None else canonical(distinct)
    except (TypeError, ValueError) as exc:
        raise NotCollected(f"the item cannot be kept as JSON: {exc}") from None
    size = len(value_text.encode())
    if size > collect.max_item_bytes:
        raise NotCollected(
            f"the item takes {size} bytes as JSON, more than the {collect.max_item_bytes} one item may take "
            "(collect > limits > item_bytes): extract less, or raise the limit"
        )
    return Collected(group, values, distinct, group_text, value_text, distinct_text)


def collect_without_network(plan: Plan, scope: dict[str, Any]) -> Collected | None:
    """The item of a webhook, for a collecting mapping without a query; None when the event needs its collect
    job instead (skip_unless false, an expression that fails, an item over its limit): the job says why."""
    if plan.collect is None or plan.query is not None or (plan.link is not None and plan.link.signed):
        return None
    try:
        values = {extraction.name: extraction.expression.search(scope) for extraction in plan.extract}
        named = {**scope, **values}
        if plan.skip_unless is not None and not truthy(plan.skip_unless.search(named)):
            return None
        return item_from(plan, values, named)
    except (EvaluationError, NotCollected):
        return None


def duration_words(seconds: float) -> str:
    """30 → "30s", 300 → "5m", 86400 → "1d": a duration as the mapping would write it."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def rule_words(collect: Collect) -> dict[str, str]:
    """Each rule and limit of the mapping, as the reason a bucket it closes records."""
    words = {
        "max_items": f"limit: {collect.max_items} items in one bucket (collect > limits > items)",
        "max_open": f"limit: {collect.max_open} open buckets of this mapping (collect > limits > open_buckets); "
        "this one was the oldest",
    }
    if collect.close_count is not None:
        words["count"] = f"count: {collect.close_count} items"
    if collect.window is not None:
        words["window"] = f"window: {duration_words(collect.window)} after the first item"
    if collect.idle is not None:
        words["idle"] = f"idle: no item for {duration_words(collect.idle)}"
    if collect.at is not None:
        words["at"] = f"at: {collect.at}"
    if collect.until is not None:
        words["until"] = f"until: {collect.until.source}"
    return words


@dataclass
class NextTimes:
    """`Cron.next_after(now)` without asking croniter for every event: the answer holds until that time."""

    known: dict[Cron, tuple[float, float]] = field(default_factory=dict)  # cron → (asked at, answer)

    def after(self, cron: Cron, now: float) -> float:
        asked, answer = self.known.get(cron, (float("inf"), 0.0))
        if asked <= now < answer:
            return answer
        answer = cron.next_after(now)
        self.known[cron] = (now, answer)
        return answer


def until_reason(plan: Plan, group: Any, items: list[Any]) -> str | None:
    """The reason to close a bucket of `plan` now because its `until` holds; None when it does not (or fails)."""
    collect = plan.collect
    if collect is None or collect.until is None:
        return None
    try:
        holds = truthy(collect.until.search({"items": items, "group": group}))
    except EvaluationError:
        return None
    return f"until: {collect.until.source}" if holds else None
