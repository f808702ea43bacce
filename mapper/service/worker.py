"""The only link between the store and the runner: claim jobs, run their mapping, record what happened.

A pool of at most N concurrent runs on the event loop. Each claimed job holds a lease that a heartbeat keeps
extending; finishing shows the job's fencing token, so a worker that stalled past its lease cannot overwrite
the newer owner's result. Retries follow the durable schedule of the connection that failed.

A job whose earlier attempt was cut short (the process died or stalled while running it) runs ALONE: the pool
claims nothing more and the job starts once the runs in flight have ended. If it is what kills the process,
the next cut is then its own and no other job's, so after `Cuts.limit` cuts it alone is parked dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from mapper.events import Event, normalise
from mapper.language.plan import Plan, RetryPolicy
from mapper.run.outcome import RunResult
from mapper.run.trace import cap
from mapper.service import collecting
from mapper.service.metrics import Metrics
from mapper.service.options import GRACE, LEASE, POLL, RUN_TIMEOUT, TIME_SCALE, TRACE_BODY_MAX, WORKERS
from mapper.service.store import CUTS, Claimed, Cuts, Finish, Store, StoreError, run_blocking

log = logging.getLogger("wlmap.worker")

MAX_BACKOFF = 5.0  # seconds between claims at most while the store cannot be reached


class RunFunction(Protocol):
    """What the worker calls to run one mapping for one event (the runner's `run`)."""

    def __call__(
        self, plan: Plan, event: Event, *, idempotency_key: str, attempt: int, **given: Any
    ) -> Awaitable[RunResult]: ...


Plans = Callable[[], Mapping[str, Plan]]  # the mappings in force, by name


@dataclass(frozen=True)
class WorkerOptions:
    """How many jobs run at once, and the timings around each."""

    concurrency: int = WORKERS
    lease: float = LEASE  # seconds a claim lasts without a heartbeat (the heartbeat renews it every third)
    poll: float = POLL  # seconds between looks at the store when nothing wakes the pool
    run_timeout: float = RUN_TIMEOUT  # a run that takes longer is stopped and retried
    grace: float = GRACE  # on shutdown, seconds in-flight runs get to finish before they are released
    time_scale: float = TIME_SCALE  # retry delays are divided by this (tests compress hours into seconds)
    cuts: Cuts = CUTS  # what happens to a job whose attempt was cut short (its waits divided by time_scale)
    trace_body_max: int = TRACE_BODY_MAX  # bytes of each body a stored trace keeps (run.trace.cap)


def policy_for(plan: Plan, step: str | None) -> RetryPolicy:
    """The retry policy of the connection that decided the outcome: the step's, else the query's."""
    for candidate in plan.steps:
        if candidate.name == step and candidate.connection in plan.connections:
            return plan.connections[candidate.connection].retry
    if plan.query is not None and plan.query.connection in plan.connections:
        return plan.connections[plan.query.connection].retry
    return RetryPolicy()


def decide(
    result: RunResult,
    attempts: int,
    policy: RetryPolicy,
    now: float,
    *,
    rand: Callable[[], float] = random.random,
    time_scale: float = TIME_SCALE,
) -> Finish:
    """What the store records after attempt number `attempts` ended with `result`.

    schedule[0] is the first attempt ("immediately"); schedule[n] is the wait after n failed attempts. When
    the schedule has no entry left the job is dead. A target's Retry-After lengthens a wait, up to
    max_retry_after.
    """
    if result.status != "retry":
        return Finish(result.status, result.reason, result.step, result.trace_json)
    if attempts >= len(policy.schedule):
        noun = "attempt" if attempts == 1 else "attempts"
        return Finish("dead", f"gave up after {attempts} {noun}: {result.reason}", result.step, result.trace_json)
    delay = policy.schedule[attempts] * (1.0 + policy.jitter * (2.0 * rand() - 1.0))
    if result.retry_after is not None:
        delay = max(delay, min(max(result.retry_after, 0.0), policy.max_retry_after))
    wait = max(delay, 0.0) / time_scale
    return Finish(
        "retry",
        result.reason,
        result.step,
        result.trace_json,
        next_attempt_at=now + wait,
        max_attempts=len(policy.schedule),  # "next try at ... (attempt 3 of 8)"
    )


class Worker:
    """Claims due jobs from the store and runs them, at most `concurrency` at a time."""

    def __init__(
        self,
        store: Store,
        plans: Plans,
        run: RunFunction,
        options: WorkerOptions | None = None,
        *,
        metrics: Metrics | None = None,
        executor: Executor | None = None,
        rand: Callable[[], float] = random.random,
        refresh: Callable[[], bool] = lambda: False,
    ) -> None:
        """`refresh()` reloads the mappings if their files changed (True when it did): a job for a mapping this
        process has not loaded yet (another process, which loaded it first, stored the job) looks again before
        it is parked."""
        self.store, self.plans, self.run, self.refresh = store, plans, run, refresh
        self.options = options or WorkerOptions()
        self.metrics = metrics or Metrics()
        self.executor, self.rand = executor, rand
        self.collecting = collecting.Collecting(store.clock)  # a collect job's item: its bucket's rules
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[Finish | None]] = set()
        self._alone: asyncio.Task[Finish | None] | None = None  # a job with cut attempts: nothing else is claimed

    def wake(self) -> None:
        """Look at the store now (a webhook was stored, or a run ended)."""
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; `serve` then lets in-flight runs finish (or releases them) and returns."""
        self._stopping = True
        self._wake.set()

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def serve(self) -> None:
        """Claim and run jobs until `stop()`."""
        failures = 0  # claims failed in a row: the store is unreachable, so back off (and say so once)
        cuts = self.options.cuts.scaled(self.options.time_scale)
        while not self._stopping:
            self._wake.clear()
            free = self.options.concurrency - len(self._tasks)
            if free > 0 and self._alone is None:
                try:
                    claimed = await self.store.claim_async(free, self.options.lease, self.executor, cuts)
                except StoreError as exc:
                    failures += 1
                    if failures == 1:
                        log.error("cannot claim jobs (trying again less and less often): %s", exc)
                    claimed = []
                else:
                    if failures:
                        log.warning("claiming jobs again after %d failed tries", failures)
                    failures = 0
                for job in claimed:
                    self._start(job)
            pause = min(self.options.poll * 2 ** min(failures, 16), max(self.options.poll, MAX_BACKOFF))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
        await self._drain()

    def _start(self, job: Claimed) -> None:
        if job.cuts:  # the store hands such a job over last: run it once the others have ended
            log.warning(
                "job %s: an earlier attempt was cut short (%d so far); it runs alone",
                job.job,
                job.cuts,
                extra=_extra(job),
            )
            task = asyncio.create_task(self.handle(job, after=set(self._tasks)), name=f"wlmap-job-{job.job}-alone")
            self._alone = task
            task.add_done_callback(self._alone_ended)
        else:
            task = asyncio.create_task(self.handle(job), name=f"wlmap-job-{job.job}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _alone_ended(self, task: asyncio.Task[Finish | None]) -> None:
        if self._alone is task:
            self._alone = None

    async def _drain(self) -> None:
        if not self._tasks:
            return
        log.info("waiting up to %g s for %d run(s) to finish", self.options.grace, len(self._tasks))
        _, unfinished = await asyncio.wait(set(self._tasks), timeout=self.options.grace)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)

    async def handle(self, job: Claimed, *, after: Collection[asyncio.Task[Finish | None]] = ()) -> Finish | None:
        """Run one claimed job with a heartbeat on its lease (once the runs `after` have ended); on cancellation
        give the job back."""
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            if after:
                await asyncio.wait(after)
            return await self.process(job)
        except asyncio.CancelledError:
            with contextlib.suppress(StoreError):
                release = partial(self.store.release, job.job, job.token)
                await asyncio.shield(run_blocking(self.executor, release))
            log.info("job %s released unfinished; it will run again", job.job, extra=_extra(job))
            raise
        except StoreError as exc:  # the lease runs out and the job runs again, with the same idempotency key
            log.error("job %s: result not recorded: %s", job.job, exc, extra=_extra(job))
            return None
        except Exception:  # a bug: the same as above, with the traceback for the report
            log.exception("job %s: result not recorded", job.job, extra=_extra(job))
            return None
        finally:
            heartbeat.cancel()
            self.wake()

    async def _heartbeat(self, job: Claimed) -> None:
        while True:
            await asyncio.sleep(self.options.lease / 3)
            try:
                kept = await run_blocking(
                    self.executor, partial(self.store.extend, job.job, job.token, self.options.lease)
                )
            except StoreError as exc:
                log.warning("job %s: lease not renewed: %s", job.job, exc, extra=_extra(job))
                continue
            if not kept:
                log.warning("job %s: lease lost; its result will not be recorded", job.job, extra=_extra(job))
                return

    async def process(self, job: Claimed) -> Finish:
        """Run the job's mapping for its stored webhook and record the outcome."""
        plan = self.plans().get(job.mapping)
        if plan is None and await run_blocking(self.executor, self.refresh):
            plan = self.plans().get(job.mapping)
        started = time.perf_counter()
        result = None
        if plan is None:
            outcome = Finish(
                "dead",
                f"mapping `{job.mapping}` is not loaded any more (removed or renamed); "
                f"restore it, then replay job {job.job}",
            )
        else:
            event = normalise(job.body, dict(job.headers))
            given = await collecting.given(self.store, plan, job, self.executor)
            result = await self._run(plan, event, job, given)
            outcome = decide(
                result,
                job.attempt,
                policy_for(plan, result.step),
                self.store.clock(),
                rand=self.rand,
                time_scale=self.options.time_scale,
            )
        if isinstance(outcome.trace, str):
            outcome = dataclasses.replace(outcome, trace=cap(outcome.trace, self.options.trace_body_max))
        elapsed = time.perf_counter() - started
        if plan is not None and result is not None and result.collected is not None and outcome.status == "done":
            keep = collecting.keep(self.store, self.collecting, plan, job, result, self.executor)
            outcome, recorded = await keep  # the item goes into its bucket as the job finishes
        else:
            recorded = await self.store.finish_async(job.job, job.token, outcome, self.executor)
        self._count(job, outcome, elapsed, recorded)
        return outcome

    async def _run(self, plan: Plan, event: Event, job: Claimed, given: Mapping[str, Any]) -> RunResult:
        call = self.run(plan, event, idempotency_key=job.idempotency_key, attempt=job.attempt, **given)
        try:
            return await asyncio.wait_for(call, self.options.run_timeout)
        except TimeoutError:
            limit = self.options.run_timeout
            return RunResult(plan.name, "retry", f"the run did not finish within {limit:g} s")
        except Exception as exc:  # a bug in the runner: keep the job, say where to look
            log.error("job %s: the runner failed", job.job, exc_info=exc, extra=_extra(job))
            return RunResult(
                plan.name, "retry", f"the run failed unexpectedly ({type(exc).__name__}); see the wlmap log"
            )

    def _count(self, job: Claimed, outcome: Finish, elapsed: float, recorded: bool) -> None:
        extra = {**_extra(job), "step": outcome.step}
        if not recorded:
            log.warning(
                "job %s attempt %d: %s, but another worker had taken the job over; result not used",
                job.job,
                job.attempt,
                outcome.status,
                extra=extra,
            )
            return
        self.metrics.runs.inc(mapping=job.mapping, outcome=outcome.status)
        self.metrics.run_seconds.observe(elapsed, mapping=job.mapping)
        if outcome.status == "retry":
            self.metrics.retries.inc(mapping=job.mapping)
            wait = (outcome.next_attempt_at or 0.0) - self.store.clock()
            log.warning(
                "job %s attempt %d: %s; next try in %.1f s",
                job.job,
                job.attempt,
                outcome.reason,
                max(wait, 0.0),
                extra=extra,
            )
        elif outcome.status == "dead":
            self.metrics.dead.inc(mapping=job.mapping)
            log.error("job %s attempt %d: dead: %s", job.job, job.attempt, outcome.reason, extra=extra)
        else:
            log.info("job %s attempt %d: %s in %.3f s", job.job, job.attempt, outcome.status, elapsed, extra=extra)


def _extra(job: Claimed) -> dict[str, object]:
    return {"event_id": job.delivery_id, "mapping": job.mapping, "job": job.job}
