"""`wlmap buckets list|show|close` over a real SQLite store: what operators see, and closing a bucket by hand."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from test_store import delivery
from typer.testing import CliRunner

from mapper.cli import buckets as commands
from mapper.service.store import NewItem, NewJob, Rules
from mapper.service.store.sqlite import SqliteStore

NOW = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def filled(path: Path) -> None:
    store = SqliteStore(path, clock=lambda: NOW)
    rules = Rules(idle=600, words={"idle": "idle: no item for 10m"})
    try:
        for n, order in enumerate(["WO-1", "WO-1", "WO-2"]):
            item = NewItem("summary", "summary.yaml", json.dumps(order), json.dumps({"call": f"C{n}"}), None, rules)
            store.ingest(delivery(f"w{n}"), [NewJob("summary", None, "summary.yaml", item=item)], dedupe_window=300)
    finally:
        store.close()


def invoke(*args: str) -> tuple[int, str]:
    app = typer.Typer(add_completion=False)
    commands.register(app)
    app.command("noop", hidden=True)(lambda: None)  # a second command keeps `buckets` a group
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_open_buckets_are_listed_with_when_and_why_they_close(tmp_path: Path) -> None:
    store = tmp_path / "wlmap.db"
    filled(store)
    code, output = invoke("buckets", "list", "--store", str(store))
    assert code == 0
    lines = output.splitlines()
    assert lines[0].split() == ["ID", "MAPPING", "GROUP", "ITEMS", "OPENED", "STATUS", "JOB", "CLOSES"]
    assert lines[1].split()[:7] == ["2", "summary", "WO-2", "1", "2024-05-01T10:00:00Z", "open", "-"]
    assert lines[1].endswith("closes 2024-05-01T10:10:00Z (idle: no item for 10m)")
    assert lines[2].split()[:4] == ["1", "summary", "WO-1", "2"]
    code, output = invoke("buckets", "show", "1", "--store", str(store))
    assert code == 0 and "bucket 1 · mapping summary (summary.yaml) · group WO-1 · open" in output
    assert '  1. from d1 at 2024-05-01T10:00:00Z: {"call": "C0"}' in output
    assert '  2. from d2 at 2024-05-01T10:00:00Z: {"call": "C1"}' in output


def test_an_operator_closes_a_bucket_and_its_run_is_a_job(tmp_path: Path) -> None:
    store = tmp_path / "wlmap.db"
    filled(store)
    code, output = invoke("buckets", "close", "1", "--store", str(store))
    assert (code, output) == (0, "bucket 1 closed; its run is job 1 (the service runs it: wlmap events show 1)\n")
    code, output = invoke("buckets", "show", "1", "--store", str(store))
    assert "closed by an operator (" in output and "its run: job 1" in output
    assert invoke("buckets", "close", "1", "--store", str(store)) == (1, "wlmap: bucket 1 is closed already (job 1)\n")
    assert invoke("buckets", "show", "7", "--store", str(store)) == (1, "wlmap: there is no bucket 7\n")
    code, output = invoke("buckets", "list", "--status", "closed", "--store", str(store))
    assert code == 0 and len(output.splitlines()) == 2


def test_refusals_are_one_line(tmp_path: Path) -> None:
    assert invoke("buckets", "list", "--store", str(tmp_path / "none.db"))[0] == 1
    code, output = invoke("buckets", "list", "--status", "shut", "--store", str(tmp_path / "none.db"))
    assert (code, output) == (1, "wlmap: --status 'shut' is not one of: open, closed, all\n")
