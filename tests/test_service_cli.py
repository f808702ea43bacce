"""Operator commands (mapper.cli.operations): events list/show, replay with the current mapping, send a signed test.

Driven through typer's CliRunner on an app that `register` filled; the store is a real SQLite file, replays
run the stand-in runner against a fake target, `send` posts to a real listener on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fakes import serve
from test_service_support import MAPPING, SECRET, ServiceThread, Target, body_for, signed_headers
from typer.testing import CliRunner

from mapper.cli import operations as commands
from mapper.events import normalise
from mapper.language.plan import Plan
from mapper.report.events import render_table
from mapper.run.outcome import RunResult
from mapper.service import operations
from mapper.service.listener import ListenerOptions, create_app
from mapper.service.metrics import Metrics
from mapper.service.signature import verify
from mapper.service.store import Finish, NewDelivery, NewJob, Store
from mapper.service.store.sqlite import SqliteStore
from mapper.service.worker import Worker


@pytest.fixture
def app() -> typer.Typer:
    made = typer.Typer(add_completion=False)
    commands.register(made)
    return made


@pytest.fixture
def target() -> Iterator[Target]:
    with Target().running() as running:
        yield running


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    folder = tmp_path / "mappings"
    folder.mkdir()
    file = folder / "effect.yaml"
    file.write_text(MAPPING.format(schedule="[0]"))
    return file


def store_webhook(
    store: Store,
    delivery_id: str,
    resource: str,
    mapping: Path | None,
    topic: str = "scenario_session/completed",
    extra: tuple[tuple[str, str], ...] = (),
) -> Any:
    body = body_for(resource)
    headers = tuple(signed_headers(body, delivery_id, topic).items()) + extra
    jobs = [NewJob("effect", resource, str(mapping))] if mapping is not None else []
    return store.ingest(
        NewDelivery(headers, body, "sha", delivery_id, f"id:{delivery_id}", summary=f"{topic} - {resource}"),
        jobs,
        dedupe_window=300,
    )


def run_all(store: Store, mapping: Path, result: RunResult) -> None:
    from mapper.language import loader

    [plan] = loader.load_plans([mapping], {"WLMAP_TEST_TARGET": "http://unused"})

    async def run(plan: Plan, event: Any, *, idempotency_key: str, attempt: int) -> RunResult:
        return result

    worker = Worker(store, lambda: {plan.name: plan}, run)
    for claimed in store.claim(100, 60.0):
        asyncio.run(worker.process(claimed))


@pytest.fixture
def populated(tmp_path: Path, mapping: Path) -> Iterator[Path]:
    path = tmp_path / "wlmap.db"
    store = SqliteStore(path)
    store_webhook(store, "dead-1", "R1", mapping)
    run_all(
        store,
        mapping,
        RunResult(
            "effect",
            "dead",
            "step `post`: the target answered 404",
            "post",
            trace_json=json.dumps({"request": {"url": "https://target/***"}, "status": 404}),
        ),
    )
    store_webhook(store, "done-1", "R2", mapping)
    run_all(store, mapping, RunResult("effect", "done", "every step succeeded", trace_json=json.dumps({"ok": True})))
    store_webhook(store, "pending-1", "R3", mapping)
    store_webhook(
        store, "ignored-1", "R4", None, topic="user/created", extra=(("authorization", "Bearer very-secret"),)
    )
    store.close()
    yield path


@pytest.fixture
def service(populated: Path, mapping: Path, target: Target) -> Iterator[ServiceThread]:
    # Job 3 stays pending while the tests look at it: its time has not come (the pool would run it at once).
    with contextlib.closing(sqlite3.connect(populated)) as conn, conn:
        conn.execute("UPDATE jobs SET next_attempt_at = 4e9 WHERE status = 'pending'")
    with ServiceThread(lambda: SqliteStore(populated), mapping.parent, {"WLMAP_TEST_TARGET": target.url}) as running:
        yield running


def invoke(app: typer.Typer, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


# ---------------------------------------------------------------------------------------- list and show


def test_events_list_shows_jobs_and_ignored_deliveries_newest_first(app: typer.Typer, populated: Path) -> None:
    result = invoke(app, "events", "list", "--store", str(populated))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "RECEIVED", "MAPPING", "STATUS", "ATTEMPTS", "RESOURCE", "REASON"]
    assert [line.split()[0] for line in lines[1:]] == ["d4", "3", "2", "1"]
    assert "dead" in lines[4] and "the target answered 404" in lines[4] and "R1" in lines[4]
    assert "ignored" in lines[1] and "user/created" in lines[1]


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        (("--status", "dead"), ["1"]),
        (("--status", "pending"), ["3"]),
        (("--status", "ignored"), ["d4"]),
        (("--mapping", "effect"), ["3", "2", "1"]),
        (("--mapping", "other"), []),
    ],
)
def test_events_list_filters(app: typer.Typer, populated: Path, args: tuple[str, ...], ids: list[str]) -> None:
    result = invoke(app, "events", "list", "--store", str(populated), *args)
    assert result.exit_code == 0
    shown = [line.split()[0] for line in result.output.splitlines()[1:]] if ids else []
    assert shown == ids
    if not ids:
        assert result.output.strip() == "no events"


def test_events_list_reads_the_store_from_the_environment(app: typer.Typer, populated: Path) -> None:
    result = invoke(app, "events", "list", env={"WLMAP_STORE": str(populated)})
    assert result.exit_code == 0 and "d4" in result.output


def test_events_commands_explain_mistakes(app: typer.Typer, populated: Path, tmp_path: Path) -> None:
    wrong = invoke(app, "events", "list", "--store", str(populated), "--status", "lost")
    assert wrong.exit_code == 1 and "--status 'lost' is not one of: pending" in wrong.output
    missing = invoke(app, "events", "list", "--store", str(tmp_path / "none.db"))
    assert missing.exit_code == 1 and "there is no store at" in missing.output
    assert not (tmp_path / "none.db").exists()
    unknown = invoke(app, "events", "show", "99", "--store", str(populated))
    assert unknown.exit_code == 1 and "there is no job 99" in unknown.output
    garbage = invoke(app, "events", "show", "x1", "--store", str(populated))
    assert garbage.exit_code == 1 and "is not an event id" in garbage.output


def test_events_show_prints_every_attempt_with_its_trace(app: typer.Typer, populated: Path) -> None:
    result = invoke(app, "events", "show", "1", "--store", str(populated))
    assert result.exit_code == 0
    out = result.output
    assert out.startswith("job 1 · mapping effect (") and "· dead · 1 attempt\n" in out
    assert "delivery id dead-1" in out and "signature verified" in out
    assert "attempt 1 · " in out and "· dead · step post" in out
    assert '      "url": "https://target/***"' in out  # the trace, pretty


def test_events_show_a_delivery_masks_credentials(app: typer.Typer, populated: Path) -> None:
    result = invoke(app, "events", "show", "d4", "--store", str(populated))
    assert result.exit_code == 0
    assert "webhook d4 · ignored" in result.output
    assert "authorization: ***" in result.output and "very-secret" not in result.output
    assert '"id": "R4"' in result.output


def test_events_show_a_delivery_prints_no_sensitive_header_value(app: typer.Typer, tmp_path: Path) -> None:
    """Every header that carries a credential in the traces' list (run/masking.py) is masked here too."""
    sensitive = {
        "Authorization": "Bearer canary-authorization-1",
        "Proxy-Authorization": "Basic canary-proxy-2",
        "Cookie": "session=canary-cookie-3",
        "Set-Cookie": "session=canary-set-cookie-4",
        "X-CSRF-Token": "canary-csrf-5",
        "apikey": "canary-apikey-6",
        "Api-Key": "canary-api-key-7",
        "X-Api-Key": "canary-x-api-key-8",
    }
    path = tmp_path / "canary.db"
    store = SqliteStore(path)
    store_webhook(store, "canary-1", "R9", None, topic="user/created", extra=tuple(sensitive.items()))
    store.close()
    result = invoke(app, "events", "show", "d1", "--store", str(path))
    assert result.exit_code == 0, result.output
    assert [value for value in sensitive.values() if value in result.output] == []
    assert [name for name in sensitive if f"  {name}: ***\n" not in result.output] == []


# -------------------------------------------------------------------------------------------- replays


def test_replay_runs_a_dead_job_with_the_current_mapping_and_shows_the_change(
    app: typer.Typer, populated: Path, target: Target, service: ServiceThread
) -> None:
    result = invoke(app, "replay", "1", "--store", str(populated))  # no target, no secret: the service has them
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "job 1 → job 4 (effect): dead (step `post`: the target answered 404) → done (every step succeeded)"
    )
    [hit] = target.hits
    assert hit.key == "wlmap-job-4" and hit.delivery_id == "dead-1"
    listed = invoke(app, "events", "list", "--store", str(populated), "--status", "dead")
    assert listed.output.strip() == "no events"  # parked no more
    shown = invoke(app, "events", "show", "1", "--store", str(populated))
    assert "replayed as job 4" in shown.output


def test_replay_by_status_and_what_cannot_be_replayed(populated: Path, service: ServiceThread) -> None:
    store = SqliteStore(populated)
    try:
        done = asyncio.run(operations.replay(store, ["3", "77"], status="dead", since="2000-01-01", by="op"))
        lines = [str(line) for line in done]
        assert lines[0] == "job 3: not replayed: job 3 is pending: it still has work to do"
        assert lines[1] == "job 77: not replayed: there is no job 77"
        assert lines[2].startswith("job 1 → job 4 (effect): dead (")
        assert asyncio.run(operations.replay(store, status="dead", by="op")) == []
        later = asyncio.run(operations.replay(store, status="dead", since="2999-01-01", by="op"))
        assert later == []
        with pytest.raises(operations.OpsError, match="not an ISO 8601 time"):
            asyncio.run(operations.replay(store, status="dead", since="yesterday", by="op"))
    finally:
        store.close()


def test_replaying_an_ignored_webhook_matches_it_against_todays_mappings(
    populated: Path, mapping: Path, service: ServiceThread
) -> None:
    store = SqliteStore(populated)
    try:
        [still] = asyncio.run(operations.replay(store, ["d4"], by="op"))
        assert str(still) == "d4: not replayed: still no mapping wants this event"
        mapping.write_text(mapping.read_text().replace("[scenario_session/completed]", "[user/created]"))
        [now] = asyncio.run(operations.replay(store, ["d4"], by="op"))
        assert str(now) == "d4 → job 4 (effect): ignored → done (every step succeeded)"
        assert store.delivery(4).status == "accepted"
    finally:
        store.close()


def test_replay_reports_an_invalid_current_mapping(populated: Path, mapping: Path, service: ServiceThread) -> None:
    mapping.write_text(mapping.read_text().replace("method: POST", "method: POTS"))
    store = SqliteStore(populated)
    try:
        [result] = asyncio.run(operations.replay(store, ["1"], by="op"))
        assert result.problem is not None and "effect.yaml:" in result.problem and "POTS" in result.problem
        assert store.job(1).job.status == "dead"
    finally:
        store.close()


def test_replay_without_ids_or_status_is_a_usage_error(app: typer.Typer, populated: Path) -> None:
    result = invoke(app, "replay", "--store", str(populated))
    assert result.exit_code == 2 and "usage: wlmap replay" in result.output


# ----------------------------------------------------------------------------------------------- send


def test_send_posts_a_correctly_signed_webhook_with_the_files_id_or_the_given_one(
    app: typer.Typer, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "listener.db")
    listener = create_app(
        store, lambda event: [NewJob("m", event.resource_id)], ListenerOptions(secrets=(SECRET,)), metrics=Metrics()
    )
    body_file = tmp_path / "event.json"
    body_file.write_bytes(body_for("R-send"))
    headers_file = tmp_path / "headers.json"
    headers_file.write_text(
        json.dumps(
            {
                "X-Scope-Topic": "scenario_session/completed",
                "X-Scope-Webhook-Id": "from-the-file",
                "X-Scope-Hmac-Sha256": "stale",
            }
        )
    )
    try:
        with serve(listener) as url:
            args = ["send", str(body_file), "--url", f"{url}/webhooks", "--headers", str(headers_file)]
            first = invoke(app, *args, "--secret", SECRET)
            second = invoke(app, *args, env={"WLMAP_WEBHOOK_SECRETS": f"old,{SECRET}"})
            again = invoke(app, *args, "--secret", SECRET, "--delivery-id", "fixed")
            duplicate = invoke(app, *args, "--secret", SECRET, "--delivery-id", "fixed")
            refused = invoke(app, *args, "--secret", "wrong")
            unsigned = invoke(app, *args, "--unsigned")
        assert [r.exit_code for r in (first, second, again, duplicate, refused, unsigned)] == [0, 0, 0, 0, 1, 1]
        assert '200 {"status":"accepted"' in first.output
        assert '"duplicate":true' in duplicate.output
        assert '401 {"error":"signature does not match"}' in refused.output
        # The headers file's X-Scope-Webhook-Id is sent as it is (issue 15): sent twice, it is a duplicate.
        assert "X-Scope-Webhook-Id: from-the-file" in first.output and '"duplicate":true' in second.output
        ids = [row.delivery_id for row in store.deliveries()]
        assert ids.count("from-the-file") == 2 and ids.count("fixed") == 2 and len(set(ids)) == 2
        row = store.deliveries(statuses=["accepted"])[0]
        verify(row.body, dict(row.headers), [SECRET])
        assert normalise(row.body, dict(row.headers)).topic == "scenario_session/completed"
    finally:
        store.close()


def test_send_needs_a_secret_or_says_unsigned(app: typer.Typer, tmp_path: Path) -> None:
    body_file = tmp_path / "event.json"
    body_file.write_bytes(b"{}")
    result = invoke(
        app, "send", str(body_file), "--url", "http://127.0.0.1:9/webhooks", env={"WLMAP_WEBHOOK_SECRETS": ""}
    )
    assert result.exit_code == 1 and "no secret: pass --secret" in result.output
    unreachable = invoke(app, "send", str(body_file), "--url", "http://127.0.0.1:9/webhooks", "--secret", "s")
    assert unreachable.exit_code == 1 and "cannot send to http://127.0.0.1:9/webhooks" in unreachable.output
    missing = invoke(app, "send", str(tmp_path / "nope.json"), "--url", "http://x", "--secret", "s")
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_send_without_headers_signs_with_a_fresh_id_every_time(app: typer.Typer, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "listener.db")
    listener = create_app(
        store, lambda event: [NewJob("m", event.resource_id)], ListenerOptions(secrets=(SECRET,)), metrics=Metrics()
    )
    body_file = tmp_path / "event.json"
    body_file.write_bytes(body_for("R-send"))
    try:
        with serve(listener) as url:
            sent = [invoke(app, "send", str(body_file), "--url", f"{url}/webhooks", "--secret", SECRET) for _ in "ab"]
        assert [r.exit_code for r in sent] == [0, 0] and all('"duplicate"' not in r.output for r in sent)
        assert len({row.delivery_id for row in store.deliveries()}) == 2
    finally:
        store.close()


def test_send_unsigned_sends_a_legacy_webhook_without_an_id_so_a_copy_is_found_by_its_body(
    app: typer.Typer, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "listener.db")
    listener = create_app(
        store,
        lambda event, unsigned=False: [NewJob("m", event.resource_id)],
        ListenerOptions(secrets=(SECRET,), allow_unsigned=True),
        metrics=Metrics(),
    )
    body_file = tmp_path / "legacy.json"
    body_file.write_text(
        json.dumps(
            {
                "time": "2024-05-01T10:12:31Z",
                "event": "update",
                "type": "resource",
                "data": {"resource-id": "Q2FsbA==", "resource-type": "Call"},
            }
        )
    )
    try:
        with serve(listener) as url:
            first, second = (
                invoke(app, "send", str(body_file), "--url", f"{url}/webhooks", "--unsigned") for _ in "ab"
            )
        assert first.exit_code == 0 and second.exit_code == 0, first.output
        assert first.output.startswith("X-Scope-Webhook-Id: none (an unsigned legacy webhook carries none")
        assert '"duplicate"' not in first.output and '"duplicate":true' in second.output
        rows = store.deliveries()
        assert [row.delivery_id for row in rows] == [None, None]
        assert all("x-scope-webhook-id" not in dict(row.headers) for row in rows)
        assert [row.signature for row in rows] == ["unsigned", "unsigned"]
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- prune


def test_prune_deletes_what_finished_before_the_age_and_keeps_the_dead_unless_asked(
    app: typer.Typer, populated: Path
) -> None:
    env = {"WLMAP_STORE": str(populated)}
    kept = invoke(app, "prune", "--older-than", "30d", env=env)
    assert kept.exit_code == 0, kept.output
    assert kept.output.startswith("pruned 0 job(s) and 0 stored webhook(s) of status done, skipped, coalesced")
    first = invoke(app, "prune", "--older-than", "0m", env=env)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("pruned 1 job(s) and 2 stored webhook(s) of status done, skipped, coalesced, ")
    assert "dead jobs were kept: add --status dead (or all) to prune them too" in first.output
    listed = invoke(app, "events", "list", env=env)
    assert "dead" in listed.output and "pending" in listed.output
    assert "done" not in listed.output and "ignored" not in listed.output
    dead = invoke(app, "prune", "--older-than", "0m", "--status", "dead", "--vacuum", env=env)
    assert dead.exit_code == 0, dead.output
    assert dead.output.startswith("pruned 1 job(s) and 1 stored webhook(s) of status dead from before ")
    assert "vacuumed: the store is " in dead.output and "dead jobs were kept" not in dead.output
    assert invoke(app, "events", "list", "--status", "dead", env=env).output.strip() == "no events"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "30"), "wlmap: --older-than '30' is not an age: write e.g. 30d (days), 12h, 90m or 2w"),
        (
            ("--older-than", "1d", "--status", "pending,done"),
            "wlmap: --status 'pending,done': use done, skipped, coalesced, replayed, ignored, duplicate, dead or "
            "all, comma-separated (jobs with work to do are never pruned)",
        ),
    ],
)
def test_prune_explains_mistakes(app: typer.Typer, populated: Path, args: tuple[str, ...], message: str) -> None:
    result = invoke(app, "prune", *args, "--store", str(populated))
    assert result.exit_code == 1 and result.output.strip() == message


def test_prune_says_how_an_old_store_gets_its_space_back(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # tables made before wlmap set incremental vacuum
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    SqliteStore(path).close()
    result = invoke(app, "prune", "--older-than", "7d", "--store", str(path))
    assert result.exit_code == 0
    assert "this store was made before wlmap gave pruned space back to the disk: run `wlmap prune --vacuum`" in (
        result.output
    )
    assert "made before" not in invoke(app, "prune", "--older-than", "7d", "--vacuum", "--store", str(path)).output


# ------------------------------------------------------------------------------- reasons, JSON, timelines


def test_events_list_never_cuts_a_reason_and_names_the_file_not_its_folder(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "long.db"
    store = SqliteStore(path)
    mapping = tmp_path / "deep" / "folders" / "of" / "mappings" / "effect.yaml"
    long = f"step `post` ({mapping}:15): the target answered 500: " + "the body says why, " * 8 + "THE END"
    store_webhook(store, "long-1", "R1", mapping)
    [claimed] = store.claim(1, 60.0)
    store.finish(claimed.job, claimed.token, Finish("dead", long, "post"))
    store.close()
    listed = invoke(app, "events", "list", "--store", str(path))
    assert "(effect.yaml:15): the target answered 500" in listed.output and "THE END" in listed.output
    assert str(mapping.parent) not in listed.output
    table = render_table(list_events_of(path), width=100)
    assert "THE END" in table and max(len(line) for line in table.splitlines()) <= 100
    as_json = json.loads(invoke(app, "events", "list", "--store", str(path), "--format", "json").output)
    [event] = as_json["events"]
    assert event["id"] == "1" and event["status"] == "dead" and event["reason"].endswith("THE END")


def test_events_list_keeps_a_reason_quoting_a_folded_expression_on_one_line() -> None:
    from mapper.service.operations import EventLine

    reason = "skip_unless `a && (b == `null`\n    || (type(b) == 'string'\r\n        && c))` is false (a=1)"
    line = EventLine("7", 0.0, "maximo-sessions-done", "skipped", 1, "-", reason)
    [_, row] = render_table([line]).splitlines()
    assert row.endswith("skip_unless `a && (b == `null` || (type(b) == 'string' && c))` is false (a=1)")
    wrapped = render_table([line], width=110).splitlines()
    assert len(wrapped) > 2 and all(len(text) <= 110 for text in wrapped)


def list_events_of(path: Path) -> Any:
    store = SqliteStore(path)
    try:
        return operations.list_events(store)
    finally:
        store.close()


def test_events_show_as_json_and_the_history(app: typer.Typer, populated: Path) -> None:
    shown = json.loads(invoke(app, "events", "show", "1", "--store", str(populated), "--format", "json").output)
    assert shown["job"]["status"] == "dead" and shown["delivery"]["delivery_id"] == "dead-1"
    assert [h["what"].split(":")[0] for h in shown["history"]] == [
        "webhook d1 received",
        "attempt 1 started",
        "attempt 1 dead at step post",
    ]
    ignored = json.loads(invoke(app, "events", "show", "d4", "--store", str(populated), "--format", "json").output)
    assert ignored["delivery"]["headers"]["authorization"] == "***"
