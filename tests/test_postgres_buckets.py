"""Collecting and scheduled mappings on PostgreSQL with several replicas: kill -9 at random while events are
collected and buckets close; every acknowledged event in exactly one bucket, every bucket run exactly once."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PostgresSchema
from test_bucket_support import BatchTarget, collecting_service
from test_postgres_support import PgService
from test_service_buckets import KILL_RULES, Senders, assert_every_item_once, settle
from test_service_support import Target


@pytest.fixture
def target() -> Iterator[BatchTarget]:
    with BatchTarget().running() as running:
        yield running


@pytest.mark.slow
def test_replicas_killed_at_random_collect_every_item_once_and_close_every_bucket_once(
    tmp_path: Path, target: BatchTarget, postgres: PostgresSchema
) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)

    def make(directory: Path, stand_in: Target, **options: Any) -> PgService:
        return PgService(directory, stand_in, postgres, **options)

    mappings = {"placed": KILL_RULES, "queried": KILL_RULES}
    replicas = [
        collecting_service(
            tmp_path / f"replica{n}", target, mappings, queried=("queried",), make=make, args=("--lease", "4")
        )
        for n in range(3)
    ]
    target.nodes.update({f"S{k * 100_000 + i}": {"n": k * 100_000 + i} for k in range(3) for i in range(5000)})
    live = list(replicas)
    kills = 0
    try:
        for replica in replicas:
            replica.start()
        with Senders(lambda: [r.url for r in live] or [replicas[0].url]) as senders:
            end = time.monotonic() + 15.0
            while time.monotonic() < end or kills < 6:
                time.sleep(chance.uniform(0.5, 1.5))
                victim = chance.choice(replicas)
                live.remove(victim)
                victim.kill()
                kills += 1
                time.sleep(chance.uniform(0.0, 0.5))
                victim.start()
                live.append(victim)
        settle(replicas[0])
        assert all(replica.terminate() == 0 for replica in replicas)
    finally:
        for replica in replicas:
            replica.close()
    context = f"seed {seed}, {kills} kills, {len(senders.acknowledged)} acknowledged of {len(senders.sent)}"
    print(context)
    assert len(senders.acknowledged) > 100, context
    assert_every_item_once(replicas[0], target, senders, context)
