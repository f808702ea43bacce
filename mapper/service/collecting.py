"""Collecting and scheduled mappings in the service: where an event's item goes, what a run is given.

- `route`: a collecting mapping without a query has its item made from the webhook and put in its bucket in
  the webhook's own transaction (the sender hears 2xx only once the item's place is committed); otherwise
  (a query, a signed link, skip_unless false, an expression that fails, an item over its limit) the event
  gets a collect job, which queries, decides and puts the item in its bucket when it finishes, in one
  transaction — or records why not, like any other job.
- `given`: a job of a closed bucket runs with the bucket's items; a job of a schedule with its times.
- `keep`: a collect job's item goes into its bucket as the job finishes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Any

from mapper.events import Event
from mapper.language.plan import Plan
from mapper.run.buckets import Bucket, Collected, NextTimes, Window, collect_without_network, rule_words
from mapper.run.matching import webhook_scope
from mapper.run.outcome import RunResult
from mapper.service.store import Claimed, FencedOut, Finish, NewItem, NewJob, Rules, Store, run_blocking

log = logging.getLogger("wlmap.worker")


class Collecting:
    """The rules of the mappings in force, made once per mapping version, and the next `at` times."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._words: dict[tuple[str, str], dict[str, str]] = {}
        self._next = NextTimes()

    def job(self, plan: Plan, event: Event) -> NewJob:
        """The job (or the item) a collecting mapping wants for a webhook it matched."""
        collected = collect_without_network(plan, webhook_scope(event))
        if collected is None:
            return NewJob(plan.name, None, plan.file)  # no resource key: collect jobs are never coalesced
        return NewJob(plan.name, None, plan.file, item=self.item(plan, collected))

    def item(self, plan: Plan, collected: Collected) -> NewItem:
        return NewItem(
            plan.name, plan.file, collected.group_text, collected.value_text, collected.distinct_text, self.rules(plan)
        )

    def rules(self, plan: Plan) -> Rules:
        collect = plan.collect
        assert collect is not None
        key = (plan.name, plan.digest)
        words = self._words.get(key)
        if words is None:
            words = self._words[key] = rule_words(collect)
        return Rules(
            count=collect.close_count,
            window=collect.window,
            idle=collect.idle,
            at=None if collect.at is None else self._next.after(collect.at, self.clock()),
            until=collect.until is not None,
            max_items=collect.max_items,
            max_open=collect.max_open,
            words=words,
        )


async def given(store: Store, plan: Plan, job: Claimed, executor: Executor | None) -> dict[str, Any]:
    """What the runner is given besides the event: a closed bucket's items, or a scheduled run's times."""
    if plan.collect is not None:
        found = await run_blocking(executor, partial(store.bucket_for, job.delivery))
        if found is None:
            return {}  # an event to collect
        b = found.bucket
        items = [item.value for item in found.items]
        return {"bucket": Bucket(b.id, b.group, items, b.reason or "", b.opened_at, b.closed_at or b.last_item_at)}
    if plan.schedule is not None:
        run = await run_blocking(executor, partial(store.scheduled_run, job.delivery))
        if run is not None:
            return {"window": Window(run.until, run.since, run.missed)}
    return {}


async def keep(
    store: Store, collecting: Collecting, plan: Plan, job: Claimed, result: RunResult, executor: Executor | None
) -> tuple[Finish, bool]:
    """Finish a collect job with its item put in its bucket; the outcome recorded, and whether it was."""
    item = collecting.item(plan, result.collected)
    try:
        placed = await run_blocking(
            executor, partial(store.collect, job.job, job.token, job.delivery, item, result.trace_json)
        )
    except FencedOut:
        late = Finish("done", result.reason, None, result.trace_json)
        return late, await store.finish_async(job.job, job.token, late, executor)
    if placed.already:
        reason = f"already in bucket {placed.bucket} (collected before): not collected again"
        return Finish("skipped", reason), True
    if placed.closed:
        log.info("bucket %s closed; its run is job(s) %s", placed.bucket, ", ".join(map(str, placed.closed)))
    return Finish("done", f"collected into bucket {placed.bucket}"), True


def until_for(plans: Callable[[], Mapping[str, Plan]]) -> Callable[[str, Any, list[Any]], str | None]:
    """The `until` check the store runs on a bucket whose items changed (None: keep it open)."""
    from mapper.run.buckets import until_reason

    def check(mapping: str, group: Any, items: list[Any]) -> str | None:
        plan = plans().get(mapping)
        return None if plan is None else until_reason(plan, group, items)

    return check
