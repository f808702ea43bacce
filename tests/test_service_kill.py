"""kill -9 under load: every acknowledged webhook has exactly one effect in the target, the store stays sound.

Senders post signed webhooks (each a new delivery of a new resource) for ~20 s, re-sending a delivery with
the same X-Scope-Webhook-Id until it is acknowledged, as Scope would. Meanwhile the service is killed with
SIGKILL at random moments and restarted; after every kill the SQLite file must pass `PRAGMA integrity_check`.
After the final drain, each acknowledged delivery must have produced exactly one job and one effect in the
target (one idempotency key), and the service must stop cleanly on SIGTERM.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_service_support import Service, Target, body_for, signed_headers

DURATION = 20.0  # seconds of load
SENDERS = 3
PAUSE = 0.02  # between one sender's webhooks


@pytest.fixture
def target() -> Iterator[Target]:
    with Target().running() as running:
        yield running


def integrity(store: Path) -> str:
    with contextlib.closing(sqlite3.connect(store, timeout=10)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.slow
def test_kill_9_under_load_loses_nothing_that_was_acknowledged(tmp_path: Path, target: Target) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    service = Service(tmp_path, target)
    acknowledged: set[str] = set()
    sent: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def sender(k: int) -> None:
        with httpx.Client(timeout=5) as client:
            n = 0
            while not stop.is_set():
                delivery, body = f"s{k}-{n}", body_for(f"R{k}-{n}", n)
                with lock:
                    sent.add(delivery)
                while not stop.is_set():  # the same delivery again until it is acknowledged
                    try:
                        answer = client.post(
                            f"{service.url}/webhooks", content=body, headers=signed_headers(body, delivery)
                        )
                    except httpx.HTTPError:
                        time.sleep(0.02)
                        continue
                    if answer.status_code == 200:
                        with lock:
                            acknowledged.add(delivery)
                        break
                    assert answer.status_code == 503, answer.text
                    time.sleep(0.02)
                n += 1
                time.sleep(PAUSE)

    checks: list[str] = []
    try:
        service.start()
        threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(SENDERS)]
        for thread in threads:
            thread.start()
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            time.sleep(chance.uniform(0.5, 2.5))
            service.kill()
            checks.append(integrity(service.store))
            service.start()
        stop.set()
        for thread in threads:
            thread.join(10)
        service.drain(timeout=40)
        assert service.terminate() == 0
    finally:
        stop.set()
        service.close()

    lost = service.query("SELECT COUNT(*) FROM attempts WHERE status = 'lost'")[0][0]
    resent = service.query("SELECT COUNT(*) FROM deliveries WHERE status = 'duplicate'")[0][0]
    context = (
        f"seed {seed}, {service.starts - 1} kills, {len(acknowledged)} acknowledged of {len(sent)} sent, "
        f"{lost} runs cut off, {resent} re-sent deliveries"
    )
    print(context)
    assert service.starts >= 6, context
    assert checks and all(check == "ok" for check in checks), (checks, context)
    assert integrity(service.store) == "ok"
    assert len(acknowledged) > 300, context

    jobs = dict(
        service.query(
            "SELECT d.delivery_id, COUNT(j.id) FROM deliveries d JOIN jobs j ON j.delivery = d.id "
            "WHERE d.status <> 'duplicate' GROUP BY d.delivery_id"
        )
    )
    assert all(jobs.get(delivery) == 1 for delivery in acknowledged), context
    assert service.query("SELECT DISTINCT status FROM jobs") == [("done",)], context

    keys = target.keys_by_delivery()
    effects = {hit.delivery_id for hit in target.effects.values()}
    missing = sorted(acknowledged - effects)
    assert not missing, (missing[:10], context)
    doubled = {delivery: found for delivery, found in keys.items() if len(found) != 1}
    assert not doubled, (doubled, context)  # one job, one idempotency key, one effect per delivery
    assert effects <= sent
