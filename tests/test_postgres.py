"""The PostgreSQL store across processes: what one database shared by many wlmap replicas must still guarantee.

Each PostgresStore here stands for one process (its own connections); the state machine itself is tested for
both implementations in test_store.py. Needs WLMAP_TEST_POSTGRES (see conftest.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import PostgresSchema
from test_postgres_support import Proxy, upstream, url_via
from test_store import delivery
from test_worker import PLAIN, load

from mapper.events import Event
from mapper.language.plan import Plan
from mapper.run.outcome import RunResult
from mapper.service.store import Finish, NewJob, Store, StoreError, StoreUnavailable, describe, open_store
from mapper.service.store.migrations import MIGRATIONS
from mapper.service.store.postgres import PostgresStore
from mapper.service.worker import Worker, WorkerOptions

WINDOW = 300.0


@pytest.fixture
def stores(postgres: PostgresSchema) -> Iterator[Callable[..., PostgresStore]]:
    opened: list[PostgresStore] = []

    def make(url: str | None = None, **options: Any) -> PostgresStore:
        store = PostgresStore(url or postgres.url, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same moment; their results in order."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = calls[n]()
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# ----------------------------------------------------------------------------------------------- dedupe


@pytest.mark.parametrize("delivery_id", ["same-id", None], ids=["by-delivery-id", "by-body-within-window"])
def test_listeners_in_different_processes_accept_one_copy_only(
    stores: Callable[..., PostgresStore], delivery_id: str | None
) -> None:
    listeners = [stores() for _ in range(4)]
    copy = delivery(delivery_id, b'{"data": {"id": "R1"}, "state": "ended"}')
    results = together(
        *(lambda s=s: s.ingest(copy, [NewJob("m", "R1")], dedupe_window=WINDOW) for s in listeners for _ in range(6))
    )
    statuses = sorted(r.status for r in results)
    assert statuses == ["accepted"] + ["duplicate"] * 23, results
    assert len(listeners[0].jobs()) == 1


# ------------------------------------------------------------------------------------- claims, ordering


def test_workers_in_different_processes_never_share_a_job_and_keep_each_resources_order(
    stores: Callable[..., PostgresStore],
) -> None:
    listeners, workers = [stores() for _ in range(3)], [stores() for _ in range(3)]
    claims: list[tuple[str, int]] = []  # (resource, job) in the order they were claimed
    held: set[int] = set()
    overlaps: list[int] = []
    lock = threading.Lock()
    sent = threading.Event()

    def listen(n: int, store: Store) -> None:
        for k in range(60):
            body = f'{{"data": {{"id": "R{k % 6}"}}, "from": {n}, "k": {k}}}'.encode()
            store.ingest(delivery(f"l{n}-{k}", body), [NewJob("m", f"R{k % 6}")], dedupe_window=WINDOW)

    def work(store: Store) -> None:
        idle = 0
        while idle < 20:
            claimed = store.claim(3, 30.0)
            if not claimed:
                idle = idle + 1 if sent.is_set() else 0
                time.sleep(0.01)
                continue
            for job in claimed:
                with lock:
                    if job.job in held:
                        overlaps.append(job.job)
                    held.add(job.job)
                    claims.append((str(job.resource_key), job.job))
            for job in claimed:
                with lock:
                    held.discard(job.job)
                assert store.finish(job.job, job.token, Finish("done", "ok"))

    threads = [threading.Thread(target=listen, args=(n, s)) for n, s in enumerate(listeners)]
    threads += [threading.Thread(target=work, args=(s,)) for s in workers]
    for thread in threads:
        thread.start()
    for thread in threads[:3]:
        thread.join(60)
    sent.set()
    for thread in threads[3:]:
        thread.join(60)

    assert not overlaps
    jobs = listeners[0].jobs(limit=1000)
    assert len(jobs) == 180
    assert {j.status for j in jobs} <= {"done", "coalesced"}
    done = sorted(j.id for j in jobs if j.status == "done")
    assert sorted(job for _, job in claims) == done  # each job claimed exactly once
    assert all(j.attempts == 1 for j in jobs if j.status == "done")
    for resource in {r for r, _ in claims}:
        order = [job for r, job in claims if r == resource]
        assert order == sorted(order), (resource, order)  # arrival order per resource


def test_a_stalled_worker_is_fenced_out_by_the_process_that_took_its_job_over(
    stores: Callable[..., PostgresStore],
) -> None:
    first, second = stores(), stores()
    first.ingest(delivery("e1"), [NewJob("m", "R1")], dedupe_window=WINDOW)
    [stale] = first.claim(1, 0.3)
    assert second.claim(1, 30.0) == []  # the lease still holds
    time.sleep(0.4)
    [fresh] = second.claim(1, 30.0)
    assert fresh.job == stale.job and fresh.token == stale.token + 1
    assert not first.extend(stale.job, stale.token, 30.0)
    assert not first.finish(stale.job, stale.token, Finish("done", "late"))
    assert second.finish(fresh.job, fresh.token, Finish("done", "ok"))
    late, kept = second.job(fresh.job).attempts
    assert "too late: another worker had taken the job over" in (late.reason or "") and kept.reason == "ok"
    assert second.job(fresh.job).job.status == "done"


def test_leases_use_the_databases_clock(stores: Callable[..., PostgresStore], postgres: PostgresSchema) -> None:
    store = stores()
    [(database_now,)] = postgres.query("SELECT extract(epoch FROM clock_timestamp())::float8")
    assert abs(store.clock() - database_now) < 1.0


def test_replicas_starting_together_upgrade_the_layout_once(postgres: PostgresSchema) -> None:
    opened = together(*(lambda: PostgresStore(postgres.url) for _ in range(6)))
    try:
        assert all(isinstance(store, PostgresStore) for store in opened), opened
        assert postgres.query("SELECT version FROM schema_version ORDER BY version") == [
            (m.version,) for m in MIGRATIONS
        ]
    finally:
        for store in opened:
            if isinstance(store, PostgresStore):
                store.close()


def test_concurrent_prunes_do_not_trip_over_each_other(stores: Callable[..., PostgresStore]) -> None:
    clock = [1_700_000_000.0]
    first, second = stores(clock=lambda: clock[0]), stores(clock=lambda: clock[0])
    for n in range(40):
        first.ingest(delivery(f"e{n}", f'{{"n": {n}}}'.encode()), [], dedupe_window=WINDOW)
    clock[0] += 8 * 86400
    pruned = together(lambda: first.prune(clock[0] - 7 * 86400), lambda: second.prune(clock[0] - 7 * 86400))
    assert sum(pruned) == 40 and first.deliveries() == []


# ------------------------------------------------------------------------------------------ LISTEN/NOTIFY


def test_an_idle_worker_hears_of_jobs_another_process_stored_without_waiting_for_its_poll(
    stores: Callable[..., PostgresStore], postgres: PostgresSchema
) -> None:
    """The poll is a minute: only the notification can start these runs within the ten seconds given, and it
    still does after every connection to the database was cut (the listening one reconnects)."""
    listener, worker_store = stores(), stores()
    plan = load(PLAIN)
    started: list[str] = []

    async def scenario() -> None:
        ran = asyncio.Event()

        async def run(plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
            started.append(str(event.resource_id))
            ran.set()
            return RunResult(plan.name, "done", "every step succeeded")

        worker = Worker(worker_store, lambda: {plan.name: plan}, run, WorkerOptions(poll=60.0))
        loop = asyncio.get_running_loop()
        stop = worker_store.watch(lambda: loop.call_soon_threadsafe(worker.wake))
        serving = asyncio.create_task(worker.serve())
        try:
            for n, cut in enumerate((False, True)):
                await asyncio.sleep(1.0)  # idle: the worker has looked and found nothing
                if cut:
                    assert postgres.terminate() >= 2  # the pools' connections and the listening one
                    await asyncio.sleep(1.0)
                ran.clear()
                body = f'{{"data": {{"id": "R{n}"}}}}'.encode()
                await asyncio.to_thread(
                    listener.ingest, delivery(f"e{n}", body), [NewJob(plan.name, f"R{n}")], dedupe_window=WINDOW
                )
                await asyncio.wait_for(ran.wait(), 10.0)
        finally:
            worker.stop()
            await serving
            stop()

    asyncio.run(scenario())
    assert started == ["R0", "R1"]


# ------------------------------------------------------------------------------------- connection loss


def test_a_store_whose_connections_were_terminated_reconnects_without_losing_a_call(
    stores: Callable[..., PostgresStore], postgres: PostgresSchema
) -> None:
    store = stores()
    store.ingest(delivery("e1"), [NewJob("m", "R1")], dedupe_window=WINDOW)
    assert postgres.terminate() >= 1
    result = store.ingest(delivery("e2", b"{}"), [NewJob("m", "R2")], dedupe_window=WINDOW)
    assert result.status == "accepted"
    assert len(store.claim(5, 30.0)) == 2


def test_an_unreachable_database_fails_fast_and_is_tried_again_later(
    stores: Callable[..., PostgresStore], postgres: PostgresSchema
) -> None:
    with Proxy(*upstream(postgres)) as proxy:
        store = stores(url_via(postgres, "127.0.0.1", proxy.port))
        store.ingest(delivery("e1"), [NewJob("m", "R1")], dedupe_window=WINDOW)
        proxy.stop()
        with pytest.raises(StoreUnavailable, match=r"cannot connect|lost"):
            store.ingest(delivery("e2", b"{}"), [NewJob("m", "R2")], dedupe_window=WINDOW)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"unreachable .* trying again in"):
            store.ping()  # no new attempt so soon: the answer is immediate
        assert time.monotonic() - started < 0.1
        proxy.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                store.ingest(delivery("e2", b"{}"), [NewJob("m", "R2")], dedupe_window=WINDOW)
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert sorted(j.resource_key or "" for j in store.jobs()) == ["R1", "R2"]


# ----------------------------------------------------------------------------------- opening, messages


def test_a_database_that_cannot_be_reached_is_explained_without_the_password() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://wlmap:hunter2@127.0.0.1:1/wlmap")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith("cannot connect to the database postgresql://wlmap@127.0.0.1:1/wlmap: ")
    assert "hunter2" not in message and "\n" not in message
    assert describe("postgresql://wlmap:hunter2@db.example:5433/wlmap") == "postgresql://wlmap@db.example:5433/wlmap"


def test_a_schema_that_does_not_exist_is_explained(postgres: PostgresSchema) -> None:
    with pytest.raises(StoreError, match=r"cannot prepare the store .*: no schema has been selected"):
        open_store(postgres.url.replace(postgres.schema, postgres.schema + "_missing", 1))


def test_a_size_limit_is_refused_for_postgresql() -> None:
    with pytest.raises(StoreError, match="SQLite store only"):
        open_store("postgresql://localhost/wlmap", max_bytes=1000)


def test_without_psycopg_the_message_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from mapper.service.store import open_store, StoreError\n"
        "try:\n    open_store('postgresql://localhost/wlmap')\n"
        "except StoreError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == (
        "the PostgreSQL store needs psycopg, which is not installed: pip install 'wlmap[postgres]'"
    )
