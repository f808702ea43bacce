"""A job that kills the process every time it runs (issue 15): parked dead after three cuts, the rest goes on.

The service is a real subprocess with the stand-in PoisonRunner, which SIGKILLs its own process when a
webhook's body says `"poison": true`; a supervisor (the test) restarts it each time, as systemd would. The lease
is ten minutes, so every restart must take back its predecessor's jobs at once (the holder is provably gone),
not wait the lease out. Runs on SQLite, and on PostgreSQL when WLMAP_TEST_POSTGRES is set (see conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from test_postgres_support import PgService
from test_service_support import Service, Target, body_for

POISON_ARGS = ("--runner", "test_service_support:PoisonRunner", "--lease", "600", "--time-scale", "100")


@pytest.fixture
def target() -> Iterator[Target]:
    with Target().running() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
def service(request: pytest.FixtureRequest, tmp_path: Path, target: Target) -> Iterator[Service]:
    if request.param == "sqlite":
        made = Service(tmp_path, target, args=POISON_ARGS)
    else:
        made = PgService(tmp_path, target, request.getfixturevalue("postgres"), args=POISON_ARGS)
    try:
        yield made
    finally:
        made.close()


def supervise(service: Service, job_done: Callable[[], bool], timeout: float = 90.0) -> int:
    """Restart the service whenever it dies, until `job_done()`; how many restarts it took."""
    restarts = 0
    deadline = time.monotonic() + timeout
    while not job_done():
        assert time.monotonic() < deadline, f"still not done after {restarts} restarts:\n{service.tail()}"
        assert service.proc is not None
        if service.proc.poll() is not None:
            restarts += 1
            service.start(wait=False)  # it may die again before it has answered /healthz
        time.sleep(0.05)
    service.wait_ready()
    return restarts


def send_until_acknowledged(service: Service, numbers: range) -> None:
    for n in numbers:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if service.post(body_for(f"R{n}", n), f"after-{n}", timeout=2).status_code == 200:
                    break
            time.sleep(0.05)


def test_a_job_that_kills_the_process_is_parked_dead_and_the_others_run(service: Service, target: Target) -> None:
    service.start()
    poison = json.dumps({"data": {"id": "POISON"}, "poison": True}).encode()
    for n in range(4):
        assert service.post(body_for(f"R{n}", n), f"before-{n}").status_code == 200
    assert service.post(poison, "poison").status_code == 200
    later = threading.Thread(target=send_until_acknowledged, args=(service, range(4, 8)), daemon=True)
    later.start()  # while the service keeps dying and being restarted, as Scope re-sends what was not answered

    def parked() -> bool:
        found = service.query("SELECT status FROM jobs WHERE resource_key = 'POISON'")
        return found == [("dead",)] and not later.is_alive()

    restarts = supervise(service, parked)
    service.drain()
    assert service.terminate() == 0

    [(reason, cuts)] = service.query("SELECT last_reason, cuts FROM jobs WHERE resource_key = 'POISON'")
    assert reason == "the process stopped 3 times while running this job; parked so that the others can run"
    # On SQLite a supervisor starts the worker process again itself (mapper/service/supervisor.py).
    started_again = service.log.read_text(errors="replace").count("starting it again")
    assert cuts == 3 and restarts + started_again == 3
    attempts = service.query(
        "SELECT a.status FROM attempts a JOIN jobs j ON j.id = a.job WHERE j.resource_key = 'POISON' ORDER BY a.number"
    )
    assert attempts == [("lost",), ("lost",), ("lost",)]
    others = service.query("SELECT resource_key, status FROM jobs WHERE resource_key <> 'POISON' ORDER BY id")
    assert others == [(f"R{n}", "done") for n in range(8)]
    assert sorted(hit.delivery_id for hit in target.effects.values()) == sorted(
        [f"before-{n}" for n in range(4)] + [f"after-{n}" for n in range(4, 8)]
    )
    assert all(len(keys) == 1 for keys in target.keys_by_delivery().values())
    log = service.log.read_text(errors="replace")
    assert "whose process is gone (killed?)" in log  # taken back at once: a 600 s lease was never waited out
    assert "an earlier attempt was cut short (2 so far); it runs alone" in log
