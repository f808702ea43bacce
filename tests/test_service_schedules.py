"""A scheduled mapping through the real service: it fires at its due time, and a due time that passed while
the service was killed runs once on start, with its original time (`until`) and the previous run's (`since`).

The cron expression names every minute, so the test takes two to three minutes; --time-scale 60 shrinks the
minute a due time may be late and still count as on time to a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_bucket_support import BatchTarget, scheduled_service


@pytest.fixture
def target() -> Iterator[BatchTarget]:
    with BatchTarget().running() as running:
        yield running


def moment(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


@pytest.mark.slow
def test_a_schedule_fires_across_a_kill_and_runs_its_missed_due_time_once(tmp_path: Path, target: BatchTarget) -> None:
    service = scheduled_service(tmp_path, target, "* * * * *", args=("--time-scale", "60"))
    try:
        service.start()
        deadline = time.monotonic() + 75
        while not target.scheduled:
            assert time.monotonic() < deadline, service.tail()
            time.sleep(0.1)
        service.kill()  # right after its first run
        [first] = target.scheduled.values()
        second_due = moment(first["until"]) + 60
        time.sleep(max(0.0, second_due + 3 - time.time()))  # the next due time passes while nothing runs
        service.start()
        deadline = time.monotonic() + 20
        while len(target.scheduled) < 2:
            assert time.monotonic() < deadline, service.tail()
            time.sleep(0.1)
        time.sleep(1.0)  # nothing more is due until the next minute: no second run of the missed time
        runs = service.query("SELECT due_at, since, missed FROM schedule_runs ORDER BY due_at")
        assert service.terminate() == 0
    finally:
        service.close()
    first, missed = sorted(target.scheduled.values(), key=lambda run: run["until"])
    assert moment(missed["until"]) == second_due and missed["since"] == first["until"]
    assert runs[-1] == (second_due, moment(first["until"]), 1)
    assert "fired: job" in service.tail(200) and "covering 1 missed due time(s)" in service.tail(200)
