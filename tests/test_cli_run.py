"""`wlmap run` and `wlmap test` as a user runs them: a real subprocess, real HTTP to fakes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeScope, FakeServer, Reply

ROOT = Path(__file__).resolve().parents[1]
CANARY_TOKEN = "scope-canary-7f3a9c21"
CANARY_PASSWORD = "snow-canary-b81d44e0"
NODE = {
    "__typename": "CallSession",
    "id": "Q2FsbFNlc3Npb24tOTk4MjE=",
    "startedAt": "2024-05-01T09:48:12Z",
    "endedAt": "2024-05-01T10:12:30Z",
    "duration": 1458,
    "state": "ended",
    "externalData": {"incident": "INC0010001"},
}


def wlmap(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOW_", "SCOPE_", "SAP_", "MAXIMO_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from mapper.cli.main import main; main()", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_live_run_against_fakes_prints_the_trace_without_secrets() -> None:
    with FakeServer() as server:
        scope = FakeScope(server, token=CANARY_TOKEN)
        scope.answer(FakeScope.data({"node": NODE}))
        server.route(
            "GET",
            "/api/now/table/incident",
            Reply.json({"result": [{"sys_id": "b" * 32, "number": "INC0010001", "u_worklink_session_id": ""}]}),
        )
        server.route("PATCH", "/api/now/table/incident/*", Reply.json({"result": {"sys_id": "b" * 32}}))
        env = {
            "SCOPE_GRAPHQL_URL": scope.url,
            "SCOPE_API_TOKEN": CANARY_TOKEN,
            "SNOW_BASE_URL": server.url,
            "SNOW_USER": "wlmap",
            "SNOW_PASSWORD": CANARY_PASSWORD,
        }
        done = wlmap("run", "mappings/servicenow.yaml", "--event", "samples/events/call-ended.json", env=env)
        as_json = wlmap(
            "run", "mappings/servicenow.yaml", "--event", "samples/events/call-ended.json", "--format", "json", env=env
        )
        patch = server.requests_to("/api/now/table/incident/*", "PATCH")
    assert done.returncode == 0, done.stderr
    assert "outcome  done: every step succeeded" in done.stdout
    assert "step     update-incident" in done.stdout and "PATCH" in done.stdout
    assert len(patch) == 2 and patch[0].basic_auth() == ("wlmap", CANARY_PASSWORD)  # really sent, with the secret
    assert json.loads(as_json.stdout)["outcome"]["status"] == "done"
    for output in (done.stdout, done.stderr, as_json.stdout, as_json.stderr):
        assert CANARY_TOKEN not in output and CANARY_PASSWORD not in output


def test_failed_live_run_exits_1_with_the_reason() -> None:
    with FakeServer() as server:
        scope = FakeScope(server, token=CANARY_TOKEN)
        scope.answer(FakeScope.errors("Not authorized to read object"))
        env = {
            "SCOPE_GRAPHQL_URL": scope.url,
            "SCOPE_API_TOKEN": CANARY_TOKEN,
            "SNOW_BASE_URL": server.url,
            "SNOW_USER": "wlmap",
            "SNOW_PASSWORD": CANARY_PASSWORD,
        }
        result = wlmap("run", "mappings/servicenow.yaml", "--event", "samples/events/call-ended.json", env=env)
    assert result.returncode == 1
    assert "outcome  dead: query (mappings/servicenow.yaml:" in result.stdout
    assert "Not authorized to read object" in result.stdout
    assert CANARY_TOKEN not in result.stdout + result.stderr


def test_dry_run_sends_nothing_and_shows_every_request() -> None:
    result = wlmap(
        "run",
        "mappings/sap.yaml",
        "--event",
        "samples/events/scenario-session-completed.json",
        "--headers",
        "samples/events/scenario-session-completed.headers.json",
        "--dry-run",
        "--graphql-response",
        "samples/graphql/scenario-session.json",
        "--response",
        "read-notification=samples/responses/sap-notification.json",
        "--response",  # a write needs its stub: a step that expects 204 does not count an unstubbed 200 as success
        "update-notification=samples/responses/sap-notification-patched.json",
        env={"SAP_PASSWORD": CANARY_PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    assert "dry run  nothing is sent" in result.stdout
    assert "(CSRF token fetch)" in result.stdout  # the auxiliary request is shown too
    assert "x-csrf-token: ***" in result.stdout
    assert CANARY_PASSWORD not in result.stdout + result.stderr


def test_a_run_that_does_not_trigger_says_why() -> None:
    result = wlmap("run", "mappings/servicenow.yaml", "--event", "samples/events/scenario-created.json", "--dry-run")
    assert result.returncode == 0
    assert "not triggered — event `created` is not one of: finished, updated" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "mappings/servicenow.yaml", "--event", "nope.json"], "nope.json: cannot read the event"),
        (
            [
                "run",
                "mappings/servicenow.yaml",
                "--event",
                "samples/events/call-ended.json",
                "--dry-run",
                "--response",
                "no-equals-sign",
            ],
            "--response no-equals-sign: write STEP=FILE",
        ),
        (["run", "mappings/servicenow.yaml", "--case", "no such case"], "no case named `no such case`"),
    ],
)
def test_input_mistakes_are_plain_errors_not_tracebacks(args: list[str], message: str) -> None:
    result = wlmap(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_an_event_is_a_usage_error() -> None:
    result = wlmap("run", "mappings/servicenow.yaml")
    assert result.returncode == 2 and "usage: wlmap run" in result.stderr


def test_wlmap_test_fails_with_a_diff_and_names_the_case(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text((ROOT / "mappings/servicenow.yaml").read_text())
    cases = (ROOT / "mappings/servicenow.tests.yaml").read_text().replace("../samples/", str(ROOT / "samples") + "/")
    (tmp_path / "m.tests.yaml").write_text(
        cases.replace('u_worklink_call_minutes: "24.3"', 'u_worklink_call_minutes: "99"')
    )
    result = wlmap("test", str(tmp_path))
    assert result.returncode == 1
    assert "FAIL an ended call adds a work note to its incident" in result.stdout
    assert 'u_worklink_call_minutes: expected "99", sent "24.3"' in result.stdout
    assert "1 failed" in result.stdout.splitlines()[-1]


def test_wlmap_test_reports_a_broken_tests_file_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text((ROOT / "mappings/servicenow.yaml").read_text())
    (tmp_path / "m.tests.yaml").write_text("cases:\n  - name: x\n    evnt: {}\n")
    result = wlmap("test", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'm.tests.yaml'}:3:5: unknown key `evnt` in a test case" in result.stdout
    assert "hint: did you mean `event`?" in result.stdout
