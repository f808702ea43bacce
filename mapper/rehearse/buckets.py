"""Rehearsed buckets and schedules: a sequence of events on a clock, collected, closed and run, sending nothing.

The same rules as the store, in memory (tests/test_rehearse_buckets.py compares the two on the same events):
an item goes into its group's open bucket (or replaces the one with its `distinct_by` key, in its place); the
bucket closes at `count` items, at the limit of items, when `until` holds after an item, or when its clock
time comes (`window` after its first item, `idle` after its last, the next `at` after it opened), whichever
is first; at the limit of open buckets the oldest closes to make room. Each closed bucket then runs, in the
order they closed, with the stubs' answers. A scheduled mapping runs once for its `until` (and `since`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mapper import events
from mapper.language.plan import Plan
from mapper.rehearse.stubs import StubTransport
from mapper.run import matching
from mapper.run.buckets import Bucket, Collected, Window, rule_words, until_reason
from mapper.run.outcome import RunResult
from mapper.run.runner import Runner


@dataclass
class Open:
    """A bucket being filled."""

    id: int
    group: Any
    group_text: str
    opened_at: float
    items: list[tuple[str | None, Any]] = field(default_factory=list)  # (distinct key, value)
    due: tuple[float, str] | None = None  # when a time rule closes it, and which


@dataclass
class Closed:
    bucket: Bucket
    result: RunResult | None = None
    stubs: StubTransport | None = None


@dataclass
class Arrival:
    """One event of a sequence, what happened to it, and the run that collected it."""

    at: float
    matched: bool
    why: str
    result: RunResult | None = None
    bucket: int | None = None


class Buckets:
    """The buckets of one collecting mapping, on a clock that only moves forward."""

    def __init__(self, plan: Plan) -> None:
        assert plan.collect is not None
        self.plan, self.collect = plan, plan.collect
        self.words = rule_words(plan.collect)
        self.open: dict[str, Open] = {}
        self.closed: list[Closed] = []
        self.next_id = 1

    def advance(self, now: float) -> None:
        """Close every bucket whose time has come by `now`, earliest first."""
        while True:
            due = [b for b in self.open.values() if b.due is not None and b.due[0] <= now]
            if not due:
                return
            first = min(due, key=lambda b: (b.due or (0.0, ""))[0])
            assert first.due is not None
            self._close(first, *first.due)

    def put(self, collected: Collected, now: float) -> int:
        """Put one event's item in its bucket; the bucket's id."""
        self.advance(now)
        bucket = self.open.get(collected.group_text)
        if bucket is None:
            if len(self.open) >= self.collect.max_open:
                oldest = min(self.open.values(), key=lambda b: b.id)
                self._close(oldest, now, self.words["max_open"])
            bucket = self.open[collected.group_text] = Open(self.next_id, collected.group, collected.group_text, now)
            self.next_id += 1
        keys = [key for key, _ in bucket.items]
        if collected.distinct_text is not None and collected.distinct_text in keys:
            bucket.items[keys.index(collected.distinct_text)] = (collected.distinct_text, collected.value)
        else:
            bucket.items.append((collected.distinct_text, collected.value))
        bucket.due = self._due(bucket, now)
        count = len(bucket.items)
        if self.collect.close_count is not None and count >= self.collect.close_count:
            self._close(bucket, now, self.words["count"])
        elif count >= self.collect.max_items:
            self._close(bucket, now, self.words["max_items"])
        elif (reason := until_reason(self.plan, bucket.group, [v for _, v in bucket.items])) is not None:
            self._close(bucket, now, reason)
        return bucket.id

    def close_all(self, now: float, reason: str) -> None:
        """Close every open bucket now (a dry run of one event shows what its bucket's run would send)."""
        for bucket in sorted(self.open.values(), key=lambda b: b.id):
            self._close(bucket, now, reason)

    def _due(self, bucket: Open, now: float) -> tuple[float, str] | None:
        times = []
        if self.collect.window is not None:
            times.append((bucket.opened_at + self.collect.window, self.words["window"]))
        if self.collect.at is not None:
            times.append((self.collect.at.next_after(bucket.opened_at), self.words["at"]))
        if self.collect.idle is not None:
            times.append((now + self.collect.idle, self.words["idle"]))
        return min(times, key=lambda pair: pair[0]) if times else None

    def _close(self, bucket: Open, now: float, reason: str) -> None:
        del self.open[bucket.group_text]
        items = [value for _, value in bucket.items]
        self.closed.append(Closed(Bucket(bucket.id, bucket.group, items, reason, bucket.opened_at, now)))


Stubs = Callable[[Any], StubTransport]  # the stubs for one run, given the GraphQL answer it should get


async def collect_events(
    plan: Plan, arrivals: Sequence[tuple[float, Any, Mapping[str, str], Any]], env: Mapping[str, str], stubs: Stubs
) -> tuple[Buckets, list[Arrival]]:
    """Feed (time, body, headers, GraphQL answer) in order: each matching event collected into its bucket."""
    buckets = Buckets(plan)
    seen = []
    for at, body, headers, graphql in arrivals:
        event = events.normalise(body, headers)
        matched, why = matching.match(plan, event)
        arrival = Arrival(at, matched, why)
        seen.append(arrival)
        if not matched:
            continue
        runner = Runner(env, transport=stubs(graphql))  # each event's query gets its own answer
        try:
            arrival.result = await runner.run(plan, event, idempotency_key=f"rehearsal-{len(seen)}")
        finally:
            await runner.aclose()
        if arrival.result.collected is not None:
            arrival.bucket = buckets.put(arrival.result.collected, at)
    return buckets, seen


async def run_bucket(plan: Plan, closed: Closed, env: Mapping[str, str], stubs: StubTransport) -> RunResult:
    """The steps for one closed bucket, answered by `stubs`."""
    runner = Runner(env, transport=stubs)
    try:
        event = events.normalise({"bucket": closed.bucket.id}, {})
        closed.stubs = stubs
        closed.result = await runner.run(
            plan, event, idempotency_key=f"bucket-{closed.bucket.id}", bucket=closed.bucket
        )
    finally:
        await runner.aclose()
    return closed.result


async def run_scheduled(plan: Plan, window: Window, env: Mapping[str, str], stubs: StubTransport) -> RunResult:
    """A scheduled mapping's run for one due time, answered by `stubs`."""
    runner = Runner(env, transport=stubs)
    try:
        event = events.normalise({"schedule": plan.name}, {})
        return await runner.run(plan, event, idempotency_key=f"schedule-{window.until}", window=window)
    finally:
        await runner.aclose()
