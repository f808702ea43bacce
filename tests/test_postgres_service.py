"""Several wlmap processes on one PostgreSQL, end to end: roles, database outages, kill -9 of replicas.

The processes are real subprocesses (`wlmap run --serve --store postgresql://...`) with the stand-in
runner of test_service_support, which POSTs each run to a fake target that counts effects per idempotency key
and records when each request started and ended. Needs WLMAP_TEST_POSTGRES (see conftest.py).
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import typer
from conftest import PostgresSchema
from test_postgres_support import PgService, Proxy, upstream, url_via
from test_service_support import Hit, SenderThreads, ServiceThread, Target, body_for, signed_headers
from typer.testing import CliRunner

from mapper.cli import operations as commands
from mapper.service.store import NewDelivery, NewJob
from mapper.service.store.postgres import PostgresStore

SLOW_TARGET = 0.05  # seconds the target takes per request: long enough to see two runs of one job overlap


@pytest.fixture
def target() -> Iterator[Target]:
    with Target(behave=lambda hit: (200, SLOW_TARGET, [])).running() as running:
        yield running


def overlapping(hits: list[Hit]) -> list[tuple[str, float, float]]:
    """Requests for the same job (idempotency key) that were in flight at the same time."""
    found = []
    by_key: dict[str, list[Hit]] = {}
    for hit in hits:
        by_key.setdefault(hit.key, []).append(hit)
    for key, same in by_key.items():
        same.sort(key=lambda h: h.started)
        found.extend((key, a.finished, b.started) for a, b in itertools.pairwise(same) if b.started < a.finished)
    return found


class Sender(SenderThreads):
    """Threads posting new signed webhooks to the services in turn, each re-sent until acknowledged."""

    def __init__(self, urls: Callable[[], list[str]], threads: int = 3, pause: float = 0.02) -> None:
        self.urls, self.count, self.pause = urls, threads, pause
        self.acknowledged: set[str] = set()
        self.sent: set[str] = set()
        self.answers: dict[int, int] = {}
        self.retry_after: set[str] = set()
        super().__init__(threads)

    def _send(self, k: int) -> None:
        turn = k
        with httpx.Client(timeout=5) as client:
            n = 0
            while not self.stopping.is_set():
                delivery, body = f"s{k}-{n}", body_for(f"R{k}-{n}", n)
                with self.lock:
                    self.sent.add(delivery)
                while not self.stopping.is_set():
                    urls = self.urls()
                    turn += 1
                    try:
                        answer = client.post(
                            f"{urls[turn % len(urls)]}/webhooks", content=body, headers=signed_headers(body, delivery)
                        )
                    except httpx.HTTPError:
                        time.sleep(0.02)
                        continue
                    with self.lock:
                        self.answers[answer.status_code] = self.answers.get(answer.status_code, 0) + 1
                        if answer.status_code == 503:
                            self.retry_after.add(answer.headers.get("retry-after", ""))
                    if answer.status_code == 200:
                        with self.lock:
                            self.acknowledged.add(delivery)
                        break
                    time.sleep(0.05)
                n += 1
                time.sleep(self.pause)


def assert_exactly_once(target: Target, sender: Sender, services: list[PgService], context: str) -> None:
    jobs = dict(
        services[0].query(
            "SELECT d.delivery_id, COUNT(j.id) FROM deliveries d JOIN jobs j ON j.delivery = d.id "
            "WHERE d.status <> 'duplicate' GROUP BY d.delivery_id"
        )
    )
    assert all(jobs.get(delivery) == 1 for delivery in sender.acknowledged), context
    assert services[0].query("SELECT DISTINCT status FROM jobs") == [("done",)], context
    keys = target.keys_by_delivery()
    effects = {hit.delivery_id for hit in target.effects.values()}
    missing = sorted(sender.acknowledged - effects)
    assert not missing, (missing[:10], context)
    doubled = {delivery: found for delivery, found in keys.items() if len(found) != 1}
    assert not doubled, (doubled, context)  # one job, one idempotency key, one effect per delivery
    assert effects <= sender.sent
    assert not overlapping(target.hits), (overlapping(target.hits)[:5], context)


# ------------------------------------------------------------------------------------------------ roles


def test_listeners_and_workers_run_as_separate_processes(
    tmp_path: Path, target: Target, postgres: PostgresSchema
) -> None:
    listener = PgService(tmp_path / "listener", target, postgres, args=("--role", "listener"))
    workers = [
        PgService(
            tmp_path / f"worker{n}", target, postgres, args=("--role", "worker"), env={"WLMAP_WEBHOOK_SECRETS": ""}
        )  # a worker verifies nothing: it needs no secret
        for n in range(2)
    ]
    try:
        listener.start()
        for n in range(6):
            assert listener.post(body_for(f"R{n}"), f"d{n}").status_code == 200
        time.sleep(0.5)
        assert target.hits == [] and listener.active_jobs() == 6  # a listener runs nothing
        for worker in workers:
            worker.start()
        assert httpx.post(f"{workers[0].url}/webhooks", content=b"{}").status_code == 404
        assert httpx.get(f"{workers[0].url}/readyz").status_code == 200
        listener.drain(timeout=20)
        assert sorted(hit.delivery_id for hit in target.effects.values()) == [f"d{n}" for n in range(6)]
        assert all(service.terminate() == 0 for service in (listener, *workers))
    finally:
        for service in (listener, *workers):
            service.close()
    assert "(listener only)" in listener.tail() and "(health and metrics only)" in workers[0].tail()


def test_an_idle_worker_process_starts_what_a_listener_process_stored_without_polling(
    tmp_path: Path, target: Target, postgres: PostgresSchema
) -> None:
    """Workers poll only every 60 s here: the jobs run at once because the listener's NOTIFY wakes them."""
    listener = PgService(tmp_path / "listener", target, postgres, args=("--role", "listener"))
    worker = PgService(
        tmp_path / "worker",
        target,
        postgres,
        args=("--role", "worker", "--poll", "60"),
        env={"WLMAP_WEBHOOK_SECRETS": ""},
    )
    try:
        listener.start()
        worker.start()
        time.sleep(1.0)  # the worker has looked once, found nothing, and is idle for a minute
        for n in range(3):
            assert listener.post(body_for(f"R{n}"), f"idle-{n}").status_code == 200
            listener.drain(timeout=10)
            time.sleep(0.3)
        assert sorted(hit.delivery_id for hit in target.effects.values()) == [f"idle-{n}" for n in range(3)]
        assert listener.terminate() == 0 and worker.terminate() == 0
    finally:
        listener.close()
        worker.close()


def test_operator_commands_read_and_replay_a_postgresql_store(
    tmp_path: Path, target: Target, postgres: PostgresSchema
) -> None:
    from test_service_support import MAPPING

    mapping = tmp_path / "effect.yaml"
    mapping.write_text(MAPPING.format(schedule="[0]"))
    store = PostgresStore(postgres.url)
    try:
        body = body_for("R1")
        store.ingest(
            NewDelivery(
                tuple(signed_headers(body, "pg-1").items()),
                body,
                "sha",
                "pg-1",
                "id:pg-1",
                summary="scenario_session/completed - R1",
            ),
            [NewJob("effect", "R1", str(mapping))],
            dedupe_window=300,
        )
        [claimed] = store.claim(1, 60.0)
        from mapper.service.store import Finish

        store.finish(claimed.job, claimed.token, Finish("dead", "step `post`: the target answered 404", "post"))
    finally:
        store.close()
    app = typer.Typer(add_completion=False)
    commands.register(app)
    env = {"WLMAP_STORE": postgres.url, "WLMAP_TEST_TARGET": target.url}
    listed = CliRunner().invoke(app, ["events", "list"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0 and "dead" in listed.output and "R1" in listed.output
    shown = CliRunner().invoke(app, ["events", "show", str(claimed.job)], env=env, catch_exceptions=False)
    assert shown.exit_code == 0 and "the target answered 404" in shown.output
    folder = tmp_path / "mappings"
    folder.mkdir()
    mapping.rename(folder / "effect.yaml")
    with ServiceThread(lambda: PostgresStore(postgres.url), folder, {"WLMAP_TEST_TARGET": target.url}):
        replayed = CliRunner().invoke(app, ["replay", str(claimed.job)], env=env, catch_exceptions=False)
    assert replayed.exit_code == 0, replayed.output
    assert [hit.delivery_id for hit in target.effects.values()] == ["pg-1"]
    wrong = CliRunner().invoke(app, ["events", "list", "--store", "postgresql://nobody@127.0.0.1:1/none"])
    assert wrong.exit_code == 1 and wrong.output.startswith("wlmap: cannot connect to the database postgresql://")


# -------------------------------------------------------------------------------------- connection loss


def test_a_database_outage_is_answered_503_and_loses_nothing(
    tmp_path: Path, target: Target, postgres: PostgresSchema
) -> None:
    with Proxy(*upstream(postgres)) as proxy:
        service = PgService(tmp_path, target, postgres, url=url_via(postgres, "127.0.0.1", proxy.port))
        try:
            service.start()
            with Sender(lambda: [service.url]) as sender:
                time.sleep(1.5)
                assert postgres.terminate() >= 1  # every connection cut at once, mid-load
                time.sleep(1.0)
                proxy.stop()  # now the database is gone altogether
                time.sleep(1.0)
                ready = httpx.get(f"{service.url}/readyz", timeout=10)
                answer = service.post(body_for("Rx"), "during-outage")
                time.sleep(1.5)
                proxy.start()
                time.sleep(2.0)
            assert ready.status_code == 503 and "store not writable" in ready.text
            assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
            assert answer.json() == {"error": "store unavailable"}
            assert service.proc is not None and service.proc.poll() is None  # still running
            # The store tries to reconnect with a back-off of up to 5 s: give it that, and a little more.
            deadline = time.monotonic() + 15
            while (after := service.post(body_for("Ry"), "after-outage")).status_code != 200:
                assert after.status_code == 503 and time.monotonic() < deadline, after.status_code
                time.sleep(0.25)
            sender.acknowledged.add("after-outage")
            sender.sent.add("after-outage")
            service.drain(timeout=30)
            assert service.terminate() == 0
        finally:
            service.close()
    context = f"answers {sender.answers}, {len(sender.acknowledged)} acknowledged"
    assert set(sender.answers) <= {200, 503}, context  # never a 2xx it could not keep, never another error
    assert sender.answers.get(503, 0) > 0 and sender.retry_after == {"5"}, context
    assert len(sender.acknowledged) > 20, context
    assert_exactly_once(target, sender, [service], context)
    log = service.log.read_text(errors="replace")
    assert "store: cannot connect to postgresql://" in log  # it said when the database went away...
    assert "store: connected to postgresql://" in log  # ... and when it came back


# --------------------------------------------------------------------------------- replicas and kill -9


@pytest.mark.slow
def test_three_replicas_killed_at_random_run_every_acknowledged_event_exactly_once(
    tmp_path: Path, target: Target, postgres: PostgresSchema
) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    replicas = [PgService(tmp_path / f"replica{n}", target, postgres, args=("--lease", "4")) for n in range(3)]
    live = list(replicas)
    kills = 0
    try:
        for replica in replicas:
            replica.start()
        with Sender(lambda: [r.url for r in live] or [replicas[0].url]) as sender:
            end = time.monotonic() + 22.0
            while time.monotonic() < end or kills < 8:  # a slow machine starts replicas slowly: kill on
                time.sleep(chance.uniform(0.5, 2.0))
                victim = chance.choice(replicas)
                live.remove(victim)
                victim.kill()
                kills += 1
                time.sleep(chance.uniform(0.0, 1.0))
                victim.start()
                live.append(victim)
        replicas[0].drain(timeout=40)
        assert all(replica.terminate() == 0 for replica in replicas)
    finally:
        for replica in replicas:
            replica.close()
    lost = replicas[0].query("SELECT COUNT(*) FROM attempts WHERE status = 'lost'")[0][0]
    context = (
        f"seed {seed}, {kills} kills, {len(sender.acknowledged)} acknowledged of {len(sender.sent)} sent, "
        f"{lost} runs cut off, answers {sender.answers}"
    )
    print(context)
    assert kills >= 8, context
    assert len(sender.acknowledged) > 300, context
    assert_exactly_once(target, sender, replicas, context)
