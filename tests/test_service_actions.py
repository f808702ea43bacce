"""Operator actions against the running service (a subprocess), from an operator's shell without its secrets.

`wlmap replay|retry|cancel` only ask, through the store; the service runs what they ask for with its own
environment, counts it in /metrics, and the event's history names who asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_service_support import ROOT, Hit, Service, Target, body_for


def wlmap(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator types it: none of the service's environment (no target, no secret)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WLMAP_", "TARGET"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "mapper.cli", *args, "--store", str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def metric(service: Service, name: str, **labels: str) -> float:
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in httpx.get(f"{service.url}/metrics").text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def wait_status(service: Service, job: int, status: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while service.query("SELECT status FROM jobs WHERE id = ?", (job,)) != [(status,)]:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} is not {status}:\n{service.tail()}")
        time.sleep(0.05)


@pytest.fixture
def behaviour() -> dict[str, int]:
    return {"status": 404}


@pytest.fixture
def service(tmp_path: Path, behaviour: dict[str, int]) -> Iterator[Service]:
    def behave(hit: Hit) -> tuple[int, float, list[tuple[str, str]]]:
        return behaviour["status"], 0.0, []

    with Target(behave=behave).running() as target:
        running = Service(tmp_path, target, schedule="[0, 1h]")
        try:
            yield running.start()
        finally:
            running.close()


def test_a_replay_asked_from_a_shell_without_secrets_is_run_by_the_service_and_counted(
    service: Service, behaviour: dict[str, int]
) -> None:
    service.post(body_for("R1"), "d-1")
    wait_status(service, 1, "dead")
    runs_before = metric(service, "wlmap_runs_total", mapping="effect", outcome="done")
    behaviour["status"] = 200
    replayed = wlmap("replay", "1", store=service.store)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == (
        "job 1 → job 2 (effect): dead (step `post`: the target answered 404) → done (every step succeeded)"
    )
    assert metric(service, "wlmap_runs_total", mapping="effect", outcome="done") == runs_before + 1
    shown = json.loads(wlmap("events", "show", "1", "--format", "json", store=service.store).stdout)
    [asked] = [h for h in shown["history"] if h["what"].startswith("replay job 1")]
    assert asked["who"] and asked["who"] != "service" and "made job 2" in asked["what"]


def test_retry_now_and_cancel_from_the_command_line(service: Service, behaviour: dict[str, int]) -> None:
    behaviour["status"] = 503
    service.post(body_for("R1"), "r-1")
    service.post(body_for("R2"), "r-2")
    wait_status(service, 1, "retry")
    wait_status(service, 2, "retry")
    listed = wlmap("events", "list", "--status", "retry", store=service.store)
    assert "(attempt 2 of 2): step `post`: the target answered 503" in listed.stdout
    behaviour["status"] = 200
    retried = wlmap("retry", "1", store=service.store)
    assert retried.returncode == 0 and retried.stdout.startswith("job 1: retry (step `post`: the target answered 503)")
    wait_status(service, 1, "done")
    cancelled = wlmap("cancel", "2", store=service.store)
    assert (
        cancelled.stdout.strip() == "job 2: retry (step `post`: the target answered 503) → dead (cancelled by operator)"
    )
    refused = wlmap("cancel", "1", store=service.store)
    assert (
        refused.returncode == 1 and "job 1 is done: it is not waiting, so there is nothing to cancel" in refused.stderr
    )


def test_a_replay_that_cannot_run_uses_nothing_up(service: Service) -> None:
    service.post(body_for("R1"), "d-1")
    wait_status(service, 1, "dead")
    (service.mappings / "effect.yaml").write_text(
        (service.mappings / "effect.yaml").read_text().replace("POST", "POTS")
    )
    time.sleep(1.5)  # the service looks at the files every second, and refuses the new version
    refused = wlmap("replay", "1", store=service.store)
    assert refused.returncode == 1
    assert refused.stdout.startswith("job 1: not replayed: the mapping files changed and the new version is not valid")
    assert service.query("SELECT status FROM jobs WHERE id = 1") == [("dead",)]
    assert service.query("SELECT COUNT(*) FROM jobs") == [(1,)]
