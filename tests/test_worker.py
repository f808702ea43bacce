"""The worker: retry schedule, which connection's policy applies, fencing, leases, ordering, shutdown.

Run functions are fakes (the runner is not involved); the store is a real SQLite file. Time is a fake clock
wherever a schedule is checked, so hours of retries take milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mapper.events import Event
from mapper.language import loader
from mapper.language.plan import DEFAULT_SCHEDULE, Plan, RetryPolicy
from mapper.run.outcome import RunResult
from mapper.service.store import Claimed, NewDelivery, NewJob
from mapper.service.store.sqlite import SqliteStore
from mapper.service.worker import Worker, WorkerOptions, decide, policy_for

MAPPING = """
version: 1
name: {name}
trigger:
  topics: [scenario_session/completed]
connections:
  scope:
    url: "https://scope.example/graphql"
    retry:
      schedule: [0, 7s, 70s]
      jitter: 0
  target:
    base_url: "https://target.example"
    retry:
      schedule: [0, 3s, 30s, 300s]
      jitter: 0
      max_retry_after: 60s
query:
  connection: scope
  graphql: "query Q($id: ID!) {{ node(id: $id) {{ id }} }}"
  variables:
    id: "{{{{ event.resource_id }}}}"
steps:
  - name: post
    connection: target
    method: POST
    path: /things
    json:
      id: "{{{{ result.node.id }}}}"
"""

PLAIN = """
version: 1
name: plain
trigger:
  topics: [scenario_session/completed]
connections:
  target:
    base_url: "https://target.example"
steps:
  - name: post
    connection: target
    method: POST
    path: /things
    json:
      id: "{{ event.resource_id }}"
"""


def load(text: str, name: str = "m.yaml") -> Plan:
    plan, problems = loader.load_text(text, name)
    assert plan is not None, problems
    return plan


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load(MAPPING.format(name="m"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "wlmap.db", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def real_store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "real.db")
    yield opened
    opened.close()


def ingest(store: SqliteStore, n: int, resource: str = "R1", mapping: str = "m") -> int:
    body = f'{{"data": {{"id": "{resource}"}}, "n": {n}}}'.encode()
    headers = (("x-scope-topic", "scenario_session/completed"), ("x-scope-webhook-id", f"d-{n}"))
    result = store.ingest(
        NewDelivery(headers, body, "sha", f"d-{n}", f"id:d-{n}"),
        [NewJob(mapping, resource, "m.yaml")],
        dedupe_window=300,
    )
    return result.jobs[0]


Run = Callable[..., Awaitable[RunResult]]


def returning(*results: RunResult, calls: list[dict[str, Any]] | None = None) -> Run:
    """A run function answering with `results` in turn (the last one repeated), recording every call."""
    queue = list(results)
    seen = calls if calls is not None else []

    async def run(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        seen.append({"key": idempotency_key, "attempt": attempt, "resource": event.resource_id, "mapping": plan.name})
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return run


def retry(reason: str = "target answered 503", step: str | None = "post", after: float | None = None) -> RunResult:
    return RunResult("m", "retry", reason, step, retry_after=after)


DONE = RunResult("m", "done", "every step succeeded")


# ------------------------------------------------------------------------------------- retry schedule


def test_final_outcomes_are_recorded_as_they_are() -> None:
    for status in ("done", "skipped", "dead"):
        result = RunResult("m", status, f"it was {status}", "post", trace_json='{"x": 1}')  # type: ignore[arg-type]
        outcome = decide(result, 1, RetryPolicy(), 100.0)
        assert (outcome.status, outcome.reason, outcome.step, outcome.next_attempt_at) == (
            status,
            f"it was {status}",
            "post",
            None,
        )
        assert outcome.trace == '{"x": 1}'


def test_the_default_schedule_is_svix_like_and_then_gives_up() -> None:
    policy = RetryPolicy(jitter=0.0)
    waits = []
    for attempts in range(1, 8):
        outcome = decide(retry(), attempts, policy, 1000.0)
        assert outcome.status == "retry"
        waits.append((outcome.next_attempt_at or 0) - 1000.0)
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000] == list(DEFAULT_SCHEDULE[1:])
    final = decide(retry("target answered 503"), 8, policy, 1000.0)
    assert (final.status, final.reason) == ("dead", "gave up after 8 attempts: target answered 503")


def test_jitter_stays_within_its_bounds() -> None:
    policy = RetryPolicy(jitter=0.2)
    low = decide(retry(), 2, policy, 0.0, rand=lambda: 0.0).next_attempt_at
    high = decide(retry(), 2, policy, 0.0, rand=lambda: 0.999999).next_attempt_at
    assert low == pytest.approx(240.0) and high == pytest.approx(360.0, abs=0.01)


def test_retry_after_lengthens_a_wait_up_to_the_cap_never_shortens_it() -> None:
    policy = RetryPolicy(jitter=0.0, max_retry_after=600.0)
    assert decide(retry(after=120.0), 1, policy, 0.0).next_attempt_at == 120.0  # schedule says 5 s
    assert decide(retry(after=1.0), 2, policy, 0.0).next_attempt_at == 300.0  # schedule says 300 s
    assert decide(retry(after=99999.0), 1, policy, 0.0).next_attempt_at == 600.0
    assert decide(retry(after=-5.0), 1, policy, 0.0).next_attempt_at == 5.0


def test_time_scale_compresses_the_waits() -> None:
    outcome = decide(retry(), 2, RetryPolicy(jitter=0.0), 10.0, time_scale=100.0)
    assert outcome.next_attempt_at == pytest.approx(13.0)


def test_a_single_entry_schedule_gives_up_after_one_attempt() -> None:
    outcome = decide(retry("boom"), 1, RetryPolicy(schedule=(0.0,)), 0.0)
    assert outcome.reason == "gave up after 1 attempt: boom"


def test_the_policy_is_the_failing_steps_connection_else_the_querys_else_the_default(plan: Plan) -> None:
    assert policy_for(plan, "post").schedule == (0.0, 3.0, 30.0, 300.0)
    assert policy_for(plan, None).schedule == (0.0, 7.0, 70.0)
    assert policy_for(plan, "no-such-step").schedule == (0.0, 7.0, 70.0)
    assert policy_for(load(PLAIN), None) == RetryPolicy()


# ------------------------------------------------------------------------------------ one job at a time


def drive(store: SqliteStore, plan: Plan, run: Run, clock: FakeClock | None = None, **options: Any) -> Worker:
    return Worker(store, lambda: {plan.name: plan}, run, WorkerOptions(**options))


def process_next(worker: Worker, store: SqliteStore) -> tuple[Claimed, Any]:
    [claimed] = store.claim(1, 60.0)
    return claimed, asyncio.run(worker.process(claimed))


def test_a_failing_job_follows_its_connections_schedule_then_dies(
    store: SqliteStore, clock: FakeClock, plan: Plan
) -> None:
    calls: list[dict[str, Any]] = []
    worker = drive(store, plan, returning(retry(), calls=calls))
    job = ingest(store, 1)
    waits = []
    for _ in range(3):
        _, outcome = process_next(worker, store)
        assert outcome.status == "retry"
        waits.append(outcome.next_attempt_at - clock())
        assert store.claim(1, 60.0) == []  # not before its time
        clock.now = outcome.next_attempt_at
    _, outcome = process_next(worker, store)
    assert waits == [3.0, 30.0, 300.0]
    assert (outcome.status, outcome.reason) == ("dead", "gave up after 4 attempts: target answered 503")
    assert {c["key"] for c in calls} == {f"wlmap-job-{job}"}  # the same idempotency key every time
    assert [c["attempt"] for c in calls] == [1, 2, 3, 4]
    detail = store.job(job)
    assert detail.job.status == "dead" and [a.status for a in detail.attempts] == ["retry"] * 3 + ["dead"]
    assert worker.metrics.retries.value(mapping="m") == 3 and worker.metrics.dead.value(mapping="m") == 1


def test_a_dead_result_parks_the_job_at_once(store: SqliteStore, plan: Plan) -> None:
    worker = drive(store, plan, returning(RunResult("m", "dead", "target answered 404", "post")))
    ingest(store, 1)
    claimed, outcome = process_next(worker, store)
    assert (outcome.status, outcome.reason) == ("dead", "target answered 404")
    assert store.job(claimed.job).job.attempts == 1


def test_a_runner_that_raises_is_retried_with_a_plain_reason(store: SqliteStore, plan: Plan) -> None:
    async def broken(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        raise RuntimeError("secret-token-in-message")

    worker = drive(store, plan, broken)
    ingest(store, 1)
    _, outcome = process_next(worker, store)
    assert outcome.status == "retry"
    assert outcome.reason == "the run failed unexpectedly (RuntimeError); see the wlmap log"


def test_a_run_that_hangs_is_stopped_and_retried(store: SqliteStore, plan: Plan) -> None:
    async def hangs(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        await asyncio.sleep(30)
        return DONE

    worker = drive(store, plan, hangs, run_timeout=0.05)
    ingest(store, 1)
    _, outcome = process_next(worker, store)
    assert (outcome.status, outcome.reason) == ("retry", "the run did not finish within 0.05 s")


def test_a_job_whose_mapping_is_gone_is_dead_with_what_to_do(store: SqliteStore, plan: Plan) -> None:
    worker = Worker(store, dict, returning(DONE))
    job = ingest(store, 1)
    _, outcome = process_next(worker, store)
    assert outcome.status == "dead"
    assert outcome.reason == (
        f"mapping `m` is not loaded any more (removed or renamed); restore it, then replay job {job}"
    )


def test_a_job_for_a_mapping_another_process_loaded_first_runs_after_a_reload(store: SqliteStore, plan: Plan) -> None:
    """The listener process loaded a new mapping and stored its job before this worker process looked at the files:
    the worker reloads before it parks the job."""
    loaded: dict[str, Plan] = {}

    def refresh() -> bool:
        loaded["m"] = plan
        return True

    worker = Worker(store, lambda: loaded, returning(DONE), refresh=refresh)
    ingest(store, 1)
    _, outcome = process_next(worker, store)
    assert outcome.status == "done"


def test_a_stalled_worker_cannot_overwrite_the_new_owners_result(
    store: SqliteStore, clock: FakeClock, plan: Plan
) -> None:
    worker = drive(store, plan, returning(RunResult("m", "dead", "stale view", "post")))
    job = ingest(store, 1)
    [stale] = store.claim(1, 10.0)
    clock.now += 11
    [fresh] = store.claim(1, 10.0)
    outcome = asyncio.run(worker.process(stale))
    assert outcome.status == "dead"  # what the stale run thought ...
    assert store.job(job).job.status == "running"  # ... is not what the store keeps
    assert worker.metrics.runs.value(mapping="m", outcome="dead") == 0
    assert asyncio.run(drive(store, plan, returning(DONE)).process(fresh)).status == "done"
    assert store.job(job).job.status == "done"


def test_the_run_sees_the_stored_webhook_as_an_event(store: SqliteStore, plan: Plan) -> None:
    seen: list[Event] = []

    async def run(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        seen.append(event)
        return DONE

    ingest(store, 7, resource="U2Nl")
    process_next(drive(store, plan, run), store)
    [event] = seen
    assert (event.topic, event.resource_id, event.delivery_id, event.generation) == (
        "scenario_session/completed",
        "U2Nl",
        "d-7",
        "custom-query",
    )


# --------------------------------------------------------------------------------------------- the pool


async def serve_until(worker: Worker, done: Callable[[], bool], timeout: float = 5.0) -> None:
    task = asyncio.create_task(worker.serve())
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
    worker.stop()
    await task


def test_different_resources_run_concurrently_up_to_the_limit(real_store: SqliteStore, plan: Plan) -> None:
    running = 0
    most = 0
    finished: list[str] = []

    async def run(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.1)
        running -= 1
        finished.append(event.resource_id or "")
        return DONE

    for n in range(6):
        ingest(real_store, n, resource=f"R{n}")
    worker = drive(real_store, plan, run, concurrency=3, poll=0.01)
    asyncio.run(serve_until(worker, lambda: len(finished) == 6))
    assert most == 3


def test_one_resource_waits_for_its_earlier_job_even_across_retries(real_store: SqliteStore, plan: Plan) -> None:
    order: list[int] = []
    attempts: dict[int, int] = {}

    async def run(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        n = event.payload["n"]
        order.append(n)
        attempts[n] = attempt
        return retry() if n == 1 and attempt < 3 else DONE

    first = ingest(real_store, 1)
    [started] = real_store.claim(1, 60.0)  # the first event is already running when the next arrive
    ingest(real_store, 2)
    ingest(real_store, 3)  # supersedes 2, which never started
    ingest(real_store, 4, resource="R2")
    real_store.release(started.job, started.token)
    worker = drive(real_store, plan, run, concurrency=4, poll=0.01, time_scale=1000.0)
    asyncio.run(
        serve_until(
            worker,
            lambda: real_store.counts()["pending"] + real_store.counts()["retry"] + real_store.counts()["running"] == 0,
        )
    )
    r1 = [n for n in order if n != 4]
    assert r1 == [1, 1, 3] and attempts[1] == 3  # released once (attempt 1), retried once, then done
    assert real_store.job(first).job.status == "done"
    assert [j.status for j in real_store.jobs(statuses=["coalesced"])] == ["coalesced"]


def test_a_heartbeat_keeps_a_long_run_from_being_taken_over(real_store: SqliteStore, plan: Plan) -> None:
    calls: list[int] = []

    async def slow(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        calls.append(attempt)
        await asyncio.sleep(1.2)  # four leases long
        return DONE

    job = ingest(real_store, 1)
    worker = drive(real_store, plan, slow, lease=0.3, poll=0.01)
    other = drive(real_store, plan, slow, lease=0.3, poll=0.01)

    async def both() -> None:
        await asyncio.gather(
            serve_until(worker, lambda: real_store.job(job).job.status == "done"),
            serve_until(other, lambda: real_store.job(job).job.status == "done"),
        )

    asyncio.run(both())
    assert calls == [1]


def test_shutdown_releases_runs_that_do_not_finish_in_the_grace_period(real_store: SqliteStore, plan: Plan) -> None:
    async def scenario() -> None:
        began = asyncio.Event()

        async def stuck(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
            began.set()
            await asyncio.sleep(30)
            return DONE

        worker = drive(real_store, plan, stuck, grace=0.05, poll=0.01)
        task = asyncio.create_task(worker.serve())
        await asyncio.wait_for(began.wait(), 5)
        worker.stop()
        await asyncio.wait_for(task, 5)

    job = ingest(real_store, 1)
    asyncio.run(scenario())
    detail = real_store.job(job)
    assert detail.job.status == "pending"
    assert [a.status for a in detail.attempts] == ["released"]
    [again] = real_store.claim(1, 60.0)  # claimable at once by the next process
    assert again.job == job


def test_shutdown_lets_runs_finish_within_the_grace_period(real_store: SqliteStore, plan: Plan) -> None:
    async def scenario() -> None:
        began = asyncio.Event()

        async def quick(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
            began.set()
            await asyncio.sleep(0.1)
            return DONE

        worker = drive(real_store, plan, quick, grace=5, poll=0.01)
        task = asyncio.create_task(worker.serve())
        await asyncio.wait_for(began.wait(), 5)
        worker.stop()
        await asyncio.wait_for(task, 5)

    job = ingest(real_store, 1)
    asyncio.run(scenario())
    assert real_store.job(job).job.status == "done"


def test_wake_claims_at_once_without_waiting_for_the_poll(real_store: SqliteStore, plan: Plan) -> None:
    finished: list[float] = []

    async def run(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        finished.append(time.monotonic())
        return DONE

    async def scenario() -> float:
        worker = drive(real_store, plan, run, poll=30.0)
        task = asyncio.create_task(worker.serve())
        await asyncio.sleep(0.05)
        stored = time.monotonic()
        ingest(real_store, 1)
        worker.wake()
        while not finished:
            await asyncio.sleep(0.005)
        worker.stop()
        await task
        return finished[0] - stored

    assert asyncio.run(scenario()) < 1.0


# ------------------------------------------------------------------------------------ stored traces


def test_a_stored_trace_keeps_each_body_up_to_the_limit_with_its_whole_size(
    store: SqliteStore, plan: Plan, tmp_path: Path
) -> None:
    """A 200 KB GraphQL answer made the store grow by 222 KB per event (issue 15); now a body over the limit keeps
    its start, how many bytes more there were, and its whole size."""
    import httpx

    from mapper.run.runner import Runner

    big = {"data": {"node": {"id": "R1", "notes": "n" * 200_000}}}
    body = json.dumps(big).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "scope.example":
            return httpx.Response(200, content=body, headers={"content-type": "application/json"})
        return httpx.Response(200, json={"ok": True})

    runner = Runner({}, transport=httpx.MockTransport(answer))
    worker = Worker(store, lambda: {"m": plan}, runner.run, WorkerOptions(trace_body_max=10_000))
    job = ingest(store, 1)
    [claimed] = store.claim(1, 60.0)
    assert asyncio.run(worker.process(claimed)).status == "done"
    asyncio.run(runner.aclose())
    [attempt] = store.job(job).attempts
    assert attempt.trace is not None
    [query] = [stage for stage in attempt.trace["stages"] if stage["stage"] == "query"]
    whole = len(json.dumps(big["data"], ensure_ascii=False).encode())
    assert query["data_bytes"] == whole
    assert query["data"].startswith('{"node": {"id": "R1", "notes": "nnn')
    assert query["data"].endswith(f"… {whole - 10_000} bytes more")
    [exchange] = query["exchanges"]
    assert exchange["response_body_bytes"] == len(body)
    assert exchange["response_body"].endswith(f"… {len(body) - 4096} bytes more")
    stored = store_size_of_trace(tmp_path / "wlmap.db", job)
    assert stored < 20_000, stored


def store_size_of_trace(path: Path, job: int) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT LENGTH(trace) FROM attempts WHERE job = ?", (job,)).fetchone()[0])


def test_a_webhook_without_the_id_the_query_requires_is_skipped_saying_why(store: SqliteStore, plan: Plan) -> None:
    """Issue 15: a custom-query body without data.node.id sent {"id": null} for `$id: ID!`, and Scope's error
    parked the event dead. Now nothing is asked and the job is skipped, with the webhook's own problem."""
    import httpx

    from mapper.run.runner import Runner

    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json={"errors": [{"message": "Variable $id of non-null type ID! must not be null"}]})

    body = json.dumps({"data": {"node": {"__typename": "ScenarioSession", "state": "completed"}}}).encode()
    headers = (("x-scope-topic", "scenario_session/completed"), ("x-scope-webhook-id", "no-node-id"))
    [job] = store.ingest(
        NewDelivery(headers, body, "sha", "no-node-id", "id:no-node-id"),
        [NewJob("m", None, "m.yaml")],
        dedupe_window=300,
    ).jobs
    runner = Runner({}, transport=httpx.MockTransport(answer))
    worker = Worker(store, lambda: {"m": plan}, runner.run)
    [claimed] = store.claim(1, 60.0)
    finish = asyncio.run(worker.process(claimed))
    asyncio.run(runner.aclose())
    assert asked == []
    assert finish.status == "skipped"
    assert store.job(job).job.last_reason == (
        "query (m.yaml:18): not sent: $id (ID!) is required but would be null (custom query result has no "
        "data.node.id (nor data.id): the webhook names no resource)"
    )
