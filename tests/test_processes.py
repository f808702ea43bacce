"""The service on the SQLite store in several processes (the default): one listener process and worker processes
under a supervisor. Real processes, real HTTP: webhooks are acknowledged by one process and run by others,
counted once in the one /metrics; a child killed with -9 is logged and started again, the parent killed with -9
takes its children with it; SIGTERM stops the listener first, then the workers. Through every kill, each
acknowledged webhook has exactly one effect in the target.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_service_support import SenderThreads, Service, Target, body_for, signed_headers

STARTED = re.compile(r"started the (listener|worker \d+) process \(pid (\d+)\)")


@pytest.fixture
def target() -> Iterator[Target]:
    slow = Target(behave=lambda hit: (200, 0.03, []))  # runs are in flight when a worker is killed
    with slow.running() as running:
        yield running


def children(service: Service) -> dict[str, int]:
    """The supervisor's children by name (`listener`, `worker 0`, ...), the latest start of each."""
    latest = service.log.read_text(errors="replace").rsplit(f"----- start {service.starts} -----", 1)[1]
    return {name: int(pid) for name, pid in STARTED.findall(latest)}


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_for(condition: object, what: str, service: Service, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}:\n{service.tail()}")
        time.sleep(0.05)


class Load(SenderThreads):
    """Senders that post new deliveries, each again until acknowledged (as Scope does), until stopped."""

    JOIN = 10.0

    def __init__(self, service: Service, senders: int = 3) -> None:
        self.service, self.acknowledged, self.sent = service, set[str](), set[str]()
        super().__init__(senders)

    def _send(self, k: int) -> None:
        with httpx.Client(timeout=5) as client:
            n = 0
            while not self.stopping.is_set():
                delivery, body = f"s{k}-{n}", body_for(f"R{k}-{n}", n)
                with self.lock:
                    self.sent.add(delivery)
                while not self.stopping.is_set():
                    try:
                        answer = client.post(
                            f"{self.service.url}/webhooks", content=body, headers=signed_headers(body, delivery)
                        )
                    except httpx.HTTPError:
                        time.sleep(0.02)
                        continue
                    if answer.status_code == 200:
                        with self.lock:
                            self.acknowledged.add(delivery)
                        break
                    assert answer.status_code == 503, answer.text
                    time.sleep(0.02)
                n += 1
                time.sleep(0.01)


def assert_each_once(service: Service, target: Target, acknowledged: set[str], sent: set[str]) -> None:
    jobs = dict(
        service.query(
            "SELECT d.delivery_id, COUNT(j.id) FROM deliveries d JOIN jobs j ON j.delivery = d.id "
            "WHERE d.status <> 'duplicate' GROUP BY d.delivery_id"
        )
    )
    assert all(jobs.get(delivery) == 1 for delivery in acknowledged)
    assert service.query("SELECT DISTINCT status FROM jobs") == [("done",)]
    effects = {hit.delivery_id for hit in target.effects.values()}
    assert sorted(acknowledged - effects) == []
    doubled = {delivery: keys for delivery, keys in target.keys_by_delivery().items() if len(keys) != 1}
    assert doubled == {}  # one job, one idempotency key, one effect per delivery
    assert effects <= sent


def totals(text: str) -> dict[str, float]:
    """Each counter's total over its labels, from the exposition text."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def test_webhooks_run_in_worker_processes_and_one_metrics_adds_them_up(tmp_path: Path, target: Target) -> None:
    service = Service(tmp_path, target, args=("--processes", "2"))
    try:
        service.start()
        assert sorted(children(service)) == ["listener", "worker 0", "worker 1"]
        deliveries = [f"d{n}" for n in range(40)]
        with httpx.Client(timeout=10) as client:
            for n, delivery in enumerate(deliveries):
                body = body_for(f"R{n}", n)
                answer = client.post(f"{service.url}/webhooks", content=body, headers=signed_headers(body, delivery))
                assert answer.status_code == 200, answer.text
        service.drain()
        counted = totals(httpx.get(f"{service.url}/metrics", timeout=5).text)
        holders = {row[0].split("|")[3] for row in service.query("SELECT holder FROM jobs")}
        listener = str(children(service)["listener"])
        assert service.terminate() == 0
    finally:
        service.close()
    assert counted["wlmap_webhooks_acknowledged_total"] == 40  # counted by the listener process
    assert counted["wlmap_runs_total"] == 40  # counted by the worker processes, added up by the listener
    assert listener not in holders and holders  # the listener ran nothing
    assert_each_once(service, target, set(deliveries), set(deliveries))
    log = service.tail(20)
    stopping = log.index("stopping: the listener first")
    assert stopping < log.index("the listener process stopped") < log.index("the worker processes stopped")


def test_a_killed_listener_or_worker_is_started_again_and_nothing_is_lost_or_run_twice(
    tmp_path: Path, target: Target
) -> None:
    service = Service(tmp_path, target)
    try:
        service.start()
        first = children(service)
        with Load(service) as load:
            time.sleep(1.5)
            os.kill(first["listener"], signal.SIGKILL)
            wait_for(lambda: children(service).get("listener") != first["listener"], "no new listener", service)
            service.wait_ready()
            time.sleep(1.0)
            os.kill(first["worker 0"], signal.SIGKILL)
            wait_for(lambda: children(service).get("worker 0") != first["worker 0"], "no new worker", service)
            time.sleep(1.5)
        service.drain(timeout=40)
        assert service.terminate() == 0
    finally:
        service.close()
    log = service.log.read_text(errors="replace")
    assert f"the listener process (pid {first['listener']}) was killed by SIGKILL" in log
    assert f"the worker 0 process (pid {first['worker 0']}) was killed by SIGKILL" in log
    assert len(load.acknowledged) > 50, len(load.acknowledged)
    assert_each_once(service, target, load.acknowledged, load.sent)


def test_the_parent_killed_takes_its_children_and_a_restart_loses_nothing(tmp_path: Path, target: Target) -> None:
    service = Service(tmp_path, target)
    try:
        service.start()
        pids = children(service)
        assert service.proc is not None
        metrics = list(Path(tempfile.gettempdir()).glob(f"wlmap-metrics-{service.proc.pid}-*"))
        assert len(metrics) == 1, metrics  # the run's prometheus multiprocess folder
        with Load(service) as load:
            time.sleep(1.5)
            service.kill()
            wait_for(lambda: not any(running(pid) for pid in pids.values()), "children left running", service)
            assert metrics[0].exists()  # nothing cleaned up after -9 ...
            service.start()
            assert not metrics[0].exists()  # ... until the next start removes the orphan
            time.sleep(1.0)
        service.drain(timeout=40)
        assert service.terminate() == 0
    finally:
        service.close()
    assert len(load.acknowledged) > 30, len(load.acknowledged)
    assert_each_once(service, target, load.acknowledged, load.sent)


def test_one_process_stays_available(tmp_path: Path, target: Target) -> None:
    service = Service(tmp_path, target, args=("--processes", "0"))
    try:
        service.start()
        body = body_for("R1", 1)
        assert service.post(body, "one").status_code == 200
        service.drain()
        assert children(service) == {}
        assert service.terminate() == 0
    finally:
        service.close()
    assert {hit.delivery_id for hit in target.effects.values()} == {"one"}
