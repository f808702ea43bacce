"""What happens at a time rather than on a webhook: buckets whose time (or `until`) has come are closed, and
schedules fire at their due times. Runs in every process that runs jobs; the store makes each happen once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Final

from mapper.language.plan import Plan
from mapper.service.collecting import until_for
from mapper.service.store import Store, StoreError, run_blocking
from mapper.service.store.schedules import GRACE

log = logging.getLogger("wlmap.service")

CLOSE_BATCH: Final = 100  # buckets closed per transaction at most
PRUNE_EVERY: Final = 3600.0  # seconds between looks for closed buckets whose run was pruned


class Timers:
    """Closes due buckets and fires due schedules, every `interval` seconds or sooner when poked."""

    def __init__(
        self,
        store: Store,
        plans: Callable[[], Mapping[str, Plan]],
        executor: Executor | None,
        *,
        interval: float,
        on_jobs: Callable[[], None],
        time_scale: float = 1.0,
    ) -> None:
        self.store, self.plans, self.executor = store, plans, executor
        self.interval, self.on_jobs = interval, on_jobs
        self.grace = GRACE / time_scale  # tests compress the minute a due time may be late into moments
        self._poke = asyncio.Event()
        self._next_due: dict[tuple[str, str], float] = {}  # (mapping, schedule) → its next due time, as last seen
        self._until = until_for(plans)

    def poke(self) -> None:
        """Look now (an item came: a bucket's `until` may hold); only mappings with `until` need it."""
        if any(plan.collect is not None and plan.collect.until is not None for plan in self.plans().values()):
            self._poke.set()

    async def serve(self) -> None:
        """Until cancelled."""
        next_prune = time.monotonic() + PRUNE_EVERY
        failures = 0
        while True:
            self._poke.clear()
            try:
                made = await self.close_buckets() + await self.fire_schedules()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY
                    await run_blocking(self.executor, self.store.prune_buckets)
                failures = 0
            except StoreError as exc:
                failures += 1
                if failures == 1:
                    log.error("cannot close buckets or fire schedules now (trying again): %s", exc)
                made = 0
            except Exception:
                log.exception("closing buckets or firing schedules failed; trying again")
                made = 0
            if made:
                self.on_jobs()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.interval * (1 + min(failures, 10)))

    async def close_buckets(self) -> int:
        if not any(plan.collect is not None for plan in self.plans().values()):
            return 0
        if not await run_blocking(self.executor, self.store.has_buckets_to_close):
            return 0
        jobs = await run_blocking(self.executor, partial(self.store.close_due, CLOSE_BATCH, self._until))
        if jobs:
            log.info("closed %d bucket(s); their runs are job(s) %s", len(jobs), ", ".join(map(str, jobs)))
        return len(jobs)

    async def fire_schedules(self) -> int:
        fired = 0
        now = self.store.clock()
        for plan in list(self.plans().values()):
            schedule = plan.schedule
            if schedule is None:
                continue
            key = (plan.name, str(schedule.cron))
            if self._next_due.get(key, 0.0) > now:
                continue
            done = await run_blocking(
                self.executor,
                partial(
                    self.store.fire_schedule,
                    plan.name,
                    plan.file,
                    str(schedule.cron),
                    schedule.cron.next_after,
                    schedule.cron.previous,
                    schedule.missed,
                    self.grace,
                ),
            )
            self._next_due[key] = done.next_due
            if done.skipped:
                log.warning(
                    "schedule of %s: %d due time(s) passed while wlmap was not running; skipped (missed: skip)",
                    plan.name,
                    done.skipped,
                )
            if done.job is not None and done.run is not None:
                fired += 1
                missed = f", covering {done.run.missed} missed due time(s)" if done.run.missed else ""
                log.info("schedule of %s fired: job %s%s", plan.name, done.job, missed, extra={"mapping": plan.name})
        return fired
