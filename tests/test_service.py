"""The service: trigger matching, mapping reloads, and the whole thing end to end as a real subprocess.

End-to-end cases run `wlmap run --serve` on 127.0.0.1 with a real SQLite file and the stand-in runner
from test_service_support, which POSTs to a fake target that counts effects per idempotency key.
"""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_listener import parse_metrics
from test_service_support import ROOT, Hit, Service, Target, body_for, signed_headers

from mapper.errors import MappingError
from mapper.events import normalise
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.run.matching import Triggers, match, truthy
from mapper.service.mappings import Mappings, matches

LEGACY = {
    "time": "2024-05-01T10:12:31Z",
    "event": "update",
    "type": "resource",
    "data": {"resource-id": "Q2FsbA==", "resource-type": "CallSession"},
}


def plan_with(trigger: str, name: str = "m") -> Plan:
    plan, problems = loader.load_text(plan_text(trigger, name), f"{name}.yaml")
    assert plan is not None, problems
    return plan


def plan_text(trigger: str, name: str = "m") -> str:
    return f"""
version: 1
name: {name}
trigger:
{trigger}
connections:
  target:
    base_url: "https://target.example"
steps:
  - name: post
    connection: target
    method: POST
    path: /things
"""


def legacy(**changes: Any) -> Any:
    body = json.loads(json.dumps(LEGACY))
    for key, value in changes.items():
        if key in ("resource-type", "resource-id"):
            body["data"][key] = value
        else:
            body[key] = value
    return normalise(json.dumps(body).encode(), {})


def subscription(topic: str = "scenario_session/completed", **payload: Any) -> Any:
    body = {"data": {"id": "U2Nl"}, **payload}
    return normalise(json.dumps(body).encode(), {"X-Scope-Topic": topic})


# ------------------------------------------------------------------------------------------- matching


def test_event_names_match_in_either_tense() -> None:
    plan = plan_with("  events: [update, finished]")
    assert matches(plan, legacy(event="update")) and matches(plan, legacy(event="Updated"))
    assert matches(plan, legacy(event="finished"))
    assert not matches(plan, legacy(event="create"))
    assert not matches(plan, subscription())  # "completed"


def test_resource_types_match_whatever_the_spelling() -> None:
    plan = plan_with("  resource_types: [CallSession]")
    for spelling in ("CallSession", "call_session", "callsession", "Call-Session"):
        assert matches(plan, legacy(**{"resource-type": spelling}))
    assert not matches(plan, legacy(**{"resource-type": "ScenarioSession"}))


def test_topics_match_exactly_and_every_condition_must_hold() -> None:
    plan = plan_with("  topics: [scenario_session/completed]")
    assert matches(plan, subscription())
    assert not matches(plan, subscription("scenario_session/created"))
    assert not matches(plan, legacy())
    both = plan_with("  events: [update]\n  resource_types: [CallSession]")
    assert matches(both, legacy())
    assert not matches(both, legacy(**{"resource-type": "Scenario"}))
    assert not matches(both, legacy(event="create"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, True),
        (1, True),
        ("x", True),
        ([0], True),
        ({"a": None}, True),
        (True, True),
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
    ],
)
def test_jmespath_truthiness(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


def test_when_sees_event_headers_and_payload() -> None:
    plan = plan_with('  when: "payload.state == \'ended\' && headers.\\"x-scope-topic\\" == event.topic"')
    assert matches(plan, subscription(state="ended"))
    assert not matches(plan, subscription(state="running"))
    count = plan_with("  when: payload.count")
    assert matches(count, subscription(count=0))  # 0 is true in JMESPath
    assert not matches(count, subscription(count=[]))


def test_a_when_that_fails_does_not_match_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    plan = plan_with("  when: abs(payload.state)")
    with caplog.at_level(logging.WARNING, "wlmap.service"):
        assert not matches(plan, subscription(state="ended"))
    assert "m.yaml:" in caplog.text and "does not match" in caplog.text


def test_the_trigger_index_selects_exactly_what_each_trigger_matches(caplog: pytest.LogCaptureFixture) -> None:
    triggers = [
        "  events: [update]",
        "  events: [create, update]\n  resource_types: [CallSession]",
        "  resource_types: [scenario_session]",
        "  topics: [scenario_session/completed]",
        "  topics: [scenario_session/completed]\n  when: \"payload.state == 'ended'\"",
        "  events: [update]\n  allow_unsigned: true",
        "  when: abs(payload.state)",
        "  when: payload.count",
    ]
    plans = [plan_with(trigger, f"m{n}") for n, trigger in enumerate(triggers)]
    index = Triggers(plans)
    events = [
        legacy(event="update"),
        legacy(event="Updated", **{"resource-type": "call_session"}),
        legacy(event="create", **{"resource-type": "ScenarioSession"}),
        subscription(state="ended"),
        subscription(state="running", count=0),
        subscription("call_session/created", count=[]),
    ]
    for event in events * 2:  # the second time from the index's cache
        for unsigned in (False, True):
            with caplog.at_level(logging.WARNING, "wlmap.service"):
                matched, failed = index.select(event, unsigned=unsigned)
            wanted = [p for p in plans if (p.trigger.allow_unsigned or not unsigned) and match(p, event)[0]]
            assert [p.name for p in matched] == [p.name for p in wanted]
            why = {p.name: match(p, event)[1] for p in plans if p.trigger.allow_unsigned or not unsigned}
            assert {p.name: reason for p, reason in failed} == {
                name: reason for name, reason in why.items() if reason.startswith("trigger `when` could not")
            }
    assert any(failed for event in events for failed in [index.select(event)[1]])  # the failing `when` was seen


# ------------------------------------------------------------------------------------------- reloading


GOOD = """version: 1
name: {name}
trigger:
  topics: [{topic}]
connections:
  target:
    base_url: "https://target.example"
steps:
  - name: post
    connection: target
    method: POST
    path: /things
"""


def test_mappings_route_events_and_reload_only_valid_changes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = tmp_path / "one.yaml"
    file.write_text(GOOD.format(name="one", topic="scenario_session/completed"))
    mappings = Mappings([tmp_path], {})
    mappings.load()
    [job] = mappings.route(subscription())
    assert (job.mapping, job.resource_key, job.mapping_file) == ("one", "U2Nl", str(file))
    assert not mappings.reload_if_changed()

    file.write_text(GOOD.format(name="one", topic="scenario_session/completed") + "  unknown_key: 1\n")
    with caplog.at_level(logging.ERROR, "wlmap.service"):
        assert not mappings.reload_if_changed()
    assert "previous version keeps running" in caplog.text and "one.yaml:" in caplog.text
    assert [j.mapping for j in mappings.route(subscription())] == ["one"]

    time.sleep(0.01)  # a new mtime
    file.write_text(GOOD.format(name="one", topic="scenario_session/created"))
    (tmp_path / "two.yaml").write_text(GOOD.format(name="two", topic="scenario_session/completed"))
    assert mappings.reload_if_changed()
    assert [j.mapping for j in mappings.route(subscription())] == ["two"]
    assert sorted(mappings.current()) == ["one", "two"]


def test_unsigned_webhooks_are_routed_only_to_mappings_that_allow_them(tmp_path: Path) -> None:
    (tmp_path / "signed.yaml").write_text(plan_text("  events: [update]", "signed"))
    (tmp_path / "legacy.yaml").write_text(plan_text("  events: [update]\n  allow_unsigned: true", "legacy"))
    mappings = Mappings([tmp_path], {})
    mappings.load()
    assert sorted(job.mapping for job in mappings.route(legacy())) == ["legacy", "signed"]
    assert [job.mapping for job in mappings.route(legacy(), unsigned=True)] == ["legacy"]


def test_invalid_mappings_at_start_raise_every_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\nname: bad\n")
    with pytest.raises(MappingError) as info:
        Mappings([tmp_path], {}).load()
    assert info.value.errors


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture
def target() -> Iterator[Target]:
    with Target().running() as running:
        yield running


@pytest.fixture
def service(tmp_path: Path, target: Target) -> Iterator[Service]:
    made = Service(tmp_path, target)
    yield made
    made.close()


def test_serves_health_readiness_metrics_and_refuses_hostile_input(service: Service, target: Target) -> None:
    service.start()
    assert httpx.get(f"{service.url}/readyz").json() == {"status": "ready"}
    hostile = [
        (b"{" * 5000, signed_headers(b"{" * 5000, "h-1"), 400),
        (b"x" * (2 * 1024 * 1024), {"content-type": "application/json"}, 413),
        (body_for("R1"), {**signed_headers(body_for("R1"), "h-2"), "x-scope-hmac-sha256": "%%%"}, 401),
        (body_for("R1"), {**signed_headers(body_for("R1"), "h-3"), "content-type": "text/xml"}, 415),
        (b'{"data": {"id": "\\ud800"}}', signed_headers(b'{"data": {"id": "\\ud800"}}', "h-4"), 200),
    ]
    for body, headers, status in hostile:
        assert httpx.post(f"{service.url}/webhooks", content=body, headers=headers).status_code == status
    assert service.post(body_for("R1"), "ok-1").status_code == 200
    service.drain()
    samples = parse_metrics(httpx.get(f"{service.url}/metrics").text)
    assert samples['wlmap_runs_total{mapping="effect",outcome="done"}'] == 2
    assert samples["wlmap_webhooks_acknowledged_total"] == 2
    assert service.terminate() == 0
    assert "Traceback" not in service.tail(500)


def test_a_target_down_for_a_while_gets_everything_on_schedule(tmp_path: Path, target: Target) -> None:
    service = Service(tmp_path, target, schedule="[0, 1s, 2s, 4s, 8s, 16s]", args=("--time-scale", "4"))
    try:
        service.start()
        down_until = time.monotonic() + 1.2  # from the first webhook on, however long the start took
        target.behave = lambda hit: (503 if hit.started < down_until else 200, 0.0, [])
        for n in range(5):
            assert service.post(body_for(f"R{n}", n), f"down-{n}").status_code == 200
        service.drain(timeout=20)
        assert service.query("SELECT status, COUNT(*) FROM jobs GROUP BY status") == [("done", 5)]
        for (job,) in service.query("SELECT id FROM jobs"):
            rows = service.query(
                "SELECT number, started_at, finished_at, status FROM attempts WHERE job = ? ORDER BY number", (job,)
            )
            assert [r[3] for r in rows][-1] == "done" and all(r[3] == "retry" for r in rows[:-1])
            assert len(rows) >= 2
            for (_, _, finished, _), (number, started, _, _) in itertools.pairwise(rows):
                wanted = [0, 1, 2, 4, 8, 16][number - 1] / 4
                assert wanted - 0.05 <= started - finished <= wanted + 1.0, (number, started - finished)
        assert len(target.effects) == 5
    finally:
        service.close()


def test_duplicates_sent_together_and_later_run_once(service: Service, target: Target) -> None:
    service.start()
    body = body_for("R-dup")
    answers: list[dict[str, Any]] = []

    def send() -> None:
        answers.append(service.post(body, "same-delivery").json())

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for a in answers if a.get("duplicate")) == 11
    service.drain()
    time.sleep(0.3)
    assert service.post(body, "same-delivery").json()["duplicate"] is True
    service.drain()
    assert target.keys_by_delivery() == {"same-delivery": {next(iter(target.effects))}}
    assert len(target.hits) == 1


def test_one_resource_runs_in_arrival_order_while_others_go_on(service: Service, target: Target) -> None:
    target.behave = lambda hit: (200, 0.6 if hit.n == 1 else 0.0, [])
    service.start()
    assert service.post(body_for("R1", 1), "o-1").status_code == 200
    deadline = time.monotonic() + 5
    while not target.hits:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for n, resource in ((2, "R1"), (3, "R1"), (4, "R2")):
        assert service.post(body_for(resource, n), f"o-{n}").status_code == 200
    service.drain()
    by_n = {hit.n: hit for hit in target.hits}
    assert [hit.n for hit in target.hits if hit.resource_id == "R1"] == [1, 3]  # 2 was superseded by 3
    assert by_n[3].started >= by_n[1].finished
    assert by_n[4].started < by_n[1].finished  # another resource did not wait
    assert service.query("SELECT COUNT(*) FROM jobs WHERE status = 'coalesced'") == [(1,)]


def test_a_target_that_hangs_is_retried_with_the_same_key(tmp_path: Path, target: Target) -> None:
    seen: set[str] = set()

    def hang_first(hit: Hit) -> tuple[int, float, list[tuple[str, str]]]:
        first = hit.key not in seen
        seen.add(hit.key)
        return 200, 1.5 if first else 0.0, []

    target.behave = hang_first
    service = Service(tmp_path, target, args=("--time-scale", "10"), env={"WLMAP_TEST_TIMEOUT": "0.4"})
    try:
        service.start()
        assert service.post(body_for("R-hang"), "hang-1").status_code == 200
        service.drain()
        time.sleep(1.5)  # let the hung request finish on the target too
        [(job, status, attempts)] = service.query("SELECT id, status, attempts FROM jobs")
        assert (status, attempts) == ("done", 2)
        reasons = service.query("SELECT reason FROM attempts WHERE job = ? ORDER BY number", (job,))
        assert "did not answer in time" in reasons[0][0]
        assert len(target.hits) == 2 and len({hit.key for hit in target.hits}) == 1
        assert len(target.effects) == 1
    finally:
        service.close()


def test_sigterm_gives_running_jobs_back_and_exits_cleanly(tmp_path: Path, target: Target) -> None:
    target.behave = lambda hit: (200, 5.0 if hit.attempt == 1 else 0.0, [])
    service = Service(tmp_path, target, args=("--grace", "0.3"), env={"WLMAP_TEST_TIMEOUT": "20"})
    try:
        service.start()
        assert service.post(body_for("R-term"), "term-1").status_code == 200
        deadline = time.monotonic() + 5
        while not target.hits:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        assert service.terminate() == 0
        assert time.monotonic() - started < 4
        assert service.query("SELECT status FROM jobs") == [("pending",)]
        assert service.query("SELECT status FROM attempts") == [("released",)]
        service.start()
        service.drain()
        assert service.query("SELECT status, attempts FROM jobs") == [("done", 2)]
        assert len(target.effects) == 1
        assert service.terminate() == 0
    finally:
        service.close()


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_json_logs_and_mappings_reloaded_while_running(tmp_path: Path, target: Target) -> None:
    from test_service_support import SECRET

    service = Service(tmp_path, target, args=("--log-format", "json"))
    mapping = service.mappings / "effect.yaml"
    good = mapping.read_text()
    try:
        service.start()
        assert service.post(body_for("R1"), "j-1").status_code == 200
        service.drain()
        mapping.write_text(good.replace("method: POST", "method: POTS"))
        wait_for(lambda: "previous version keeps running" in service.log.read_text())
        assert service.post(body_for("R2"), "j-2").json()["status"] == "accepted"  # the old version still runs
        service.drain()
        mapping.write_text(good.replace("[scenario_session/completed]", "[scenario_session/created]"))
        # Each of the service's processes (the listener and two worker processes) reloads on its own.
        wait_for(lambda: service.log.read_text().count("mappings reloaded") >= 3)
        assert service.post(body_for("R3"), "j-3").json()["status"] == "ignored"
        assert service.post(body_for("R4"), "j-4", topic="scenario_session/created").status_code == 200
        service.drain()
        assert service.terminate() == 0
    finally:
        service.close()
    assert {hit.delivery_id for hit in target.effects.values()} == {"j-1", "j-2", "j-4"}
    text = service.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line and not line.startswith("-----")]
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    done = [line for line in lines if line["message"].startswith("job ") and line.get("event_id") == "j-1"]
    assert done and done[-1]["mapping"] == "effect" and done[-1]["job"] == 1
    problem = next(line for line in lines if "previous version keeps running" in line["message"])
    assert "effect.yaml:" in problem["message"] and "POTS" in problem["message"]
    assert SECRET not in text and "Traceback" not in text


# --------------------------------------------------------------------------------------- start-up errors


def run_service(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environment = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mapper.cli", "run", "--serve", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        cwd=tmp_path,
    )


def test_start_up_problems_are_reported_in_plain_words(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "m.yaml").write_text(GOOD.format(name="m", topic="a/b"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "m.yaml").write_text(GOOD.format(name="m", topic="a/b").replace("method: POST", "method: POTS"))
    base = ["--store", str(tmp_path / "s.db"), "--port", "0"]
    env = {"WLMAP_WEBHOOK_SECRETS": "s"}

    invalid = run_service(tmp_path, "--mappings", str(bad), *base, env=env)
    assert invalid.returncode == 1 and "m.yaml:" in invalid.stderr and "POTS" in invalid.stderr
    no_secret = run_service(
        tmp_path, "--mappings", str(good), *base, "--require-secret", env={"WLMAP_WEBHOOK_SECRETS": ""}
    )
    assert no_secret.returncode == 1 and "no webhook secret: set WLMAP_WEBHOOK_SECRETS" in no_secret.stderr
    no_runner = run_service(tmp_path, "--mappings", str(good), *base, "--runner", "nowhere:Runner", env=env)
    assert no_runner.returncode == 1 and "cannot load the runner `nowhere:Runner`" in no_runner.stderr
    for result in (invalid, no_secret, no_runner):
        assert "Traceback" not in result.stderr
    usage = run_service(tmp_path, "--store", "x.db")
    assert usage.returncode == 2 and "--mappings" in usage.stderr
