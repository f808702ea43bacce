"""The service's side of replays: carry out what operators asked for (service.actions), with the service's
mappings, so that the jobs they make run with the service's environment and are counted in its metrics.

A request is refused, and nothing is used up, when it cannot run here: its mapping is not loaded, the mapping
files changed and the new version was refused (the replay would run the old one), no mapping wants an ignored
webhook, or the job is busy. Otherwise the new job is made pending in the same transaction that settles the
request, and the workers run it in its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Final

from mapper.events import normalise
from mapper.language.plan import Plan
from mapper.service.mappings import matches
from mapper.service.store import ActionRow, NewJob, Store, StoreError, run_blocking

log = logging.getLogger("wlmap.replays")

BATCH: Final = 50  # requests carried out per look at the store


class Replays:
    """Carries out replay requests: `serve()` until cancelled, looking every `poll` seconds or when woken."""

    def __init__(
        self,
        store: Store,
        plans: Callable[[], Mapping[str, Plan]],
        *,
        refused: Callable[[], Sequence[str]] = lambda: (),
        refresh: Callable[[], Any] | None = None,
        on_made: Callable[[], None] = lambda: None,
        poll: float = 0.5,
        executor: Executor | None = None,
    ) -> None:
        self.store, self.plans, self.refused, self.refresh = store, plans, refused, refresh
        self.on_made, self.poll, self.executor = on_made, poll, executor
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for requests now (the console asked for one)."""
        self._wake.set()

    async def serve(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await run_blocking(self.executor, self.carry_out)
            except StoreError as exc:
                failures += 1
                if failures == 1:
                    log.error("cannot read the replays operators asked for: %s", exc)
            else:
                failures = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    def carry_out(self) -> int:
        """Carry out the requests waiting now (blocking: run it in a thread); how many jobs were made."""
        requests = self.store.requested(BATCH)
        if not requests:
            return 0
        if self.refresh is not None:
            self.refresh()  # an operator who has just fixed a mapping replays with the fix
        made = 0
        for request in requests:
            try:
                made += self._one(request)
            except StoreError as exc:
                self.store.refuse(request.id, str(exc))
                log.warning("replay asked by %s refused: %s", request.requested_by, exc)
        if made:
            self.on_made()
        return made

    def _one(self, request: ActionRow) -> int:
        refused = self.refused()
        if refused:
            return self._refuse(
                request,
                "the mapping files changed and the new version is not valid, so the service still runs the "
                "previous one; fix them first: " + "; ".join(refused),
            )
        plans = self.plans()
        if request.job is not None:
            job = self.store.job(request.job).job
            plan = plans.get(job.mapping)
            if plan is None:
                return self._refuse(
                    request, f"mapping `{job.mapping}` is not loaded by the service (removed or renamed?)"
                )
            new = self.store.carry_out_replay(request.id, plan.file)
            if new is not None:
                log.info("job %s replayed as job %s, asked by %s", request.job, new, request.requested_by)
            return int(new is not None)
        if request.delivery is None:
            return self._refuse(request, "nothing to replay")
        delivery = self.store.delivery(request.delivery)
        event = normalise(delivery.body, dict(delivery.headers))
        wanted = [plan for plan in plans.values() if matches(plan, event)]
        if not wanted:
            return self._refuse(request, "still no mapping wants this event")
        jobs = [NewJob(plan.name, event.resource_id, plan.file) for plan in wanted]
        made = self.store.carry_out_reroute(request.id, jobs) or []
        if made:
            log.info("d%s replayed as job(s) %s, asked by %s", request.delivery, made, request.requested_by)
        return len(made)

    def _refuse(self, request: ActionRow, why: str) -> int:
        self.store.refuse(request.id, why)
        log.warning("replay asked by %s refused: %s", request.requested_by, why)
        return 0
