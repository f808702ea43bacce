"""Rehearsed buckets agree with the store's: the same events on the same clock close the same buckets, with the
same items, in the same order, for the same reasons; and `wlmap run` shows a bucket's contents and reason."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mapper.cli.main import app, register_all
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.rehearse.buckets import Buckets
from mapper.run.buckets import Collected, canonical, until_reason
from mapper.service.collecting import Collecting
from mapper.service.store import NewDelivery, NewJob
from mapper.service.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
MAPPING = """\
version: 1
name: rules
trigger:
  topics: [scenario_session/completed]
connections:
  target:
    base_url: https://target.example.com
extract:
  n: payload.n
  order: payload.order
  session: payload.session
collect:
  group_by: order
  distinct_by: session
  close:
{close}
  limits:
    items: 6
    open_buckets: 3
steps:
  - name: post
    connection: target
    method: POST
    path: /batch
    json:
      ns: "{{{{ items | map(attribute='n') | list }}}}"
"""
RULES = [
    "    count: 4",
    "    window: 30s",
    "    idle: 7s\n    window: 1m",
    "    at: '*/2 * * * *'",
    "    until: length(items) >= `3`\n    idle: 20s",
]


def plan_for(close: str, tmp_path: Path) -> Plan:
    path = tmp_path / "rules.yaml"
    path.write_text(MAPPING.format(close=close))
    plan, problems = loader.load_file(path)
    assert plan is not None, problems
    return plan


@pytest.mark.parametrize("close", RULES)
def test_the_rehearsal_closes_what_the_store_closes(close: str, tmp_path: Path) -> None:
    plan = plan_for(close, tmp_path)
    chance = random.Random(close)
    now = [1_714_521_600.0]  # 2024-05-01T00:00:00Z
    store = SqliteStore(tmp_path / "wlmap.db", clock=lambda: now[0])
    collecting = Collecting(clock=lambda: now[0])
    rehearsal = Buckets(plan)
    try:
        for n in range(120):
            now[0] += chance.choice([0.5, 1, 3, 9, 25, 70])
            store.close_due(100, lambda mapping, group, items: until_reason(plan, group, items))  # the closer's look
            values = {"n": n, "order": f"WO-{chance.randrange(5)}", "session": f"S{chance.randrange(40)}"}
            item = Collected(
                values["order"],
                values,
                values["session"],
                canonical(values["order"]),
                json.dumps(values),
                canonical(values["session"]),
            )
            body = json.dumps(values).encode()
            store.ingest(
                NewDelivery((), body, "x", f"d{n}", f"id:d{n}"),
                [NewJob("rules", None, plan.file, item=collecting.item(plan, item))],
                dedupe_window=0,
            )
            store.close_due(100, lambda mapping, group, items: until_reason(plan, group, items))  # poked by the item
            rehearsal.put(item, now[0])
        store.close_due(100, lambda mapping, group, items: until_reason(plan, group, items))
        closed = sorted((b for b in store.buckets(status="closed", limit=1000)), key=lambda b: (b.closed_at, b.id))
        from_store = [(b.group, [i.value["n"] for i in store.bucket(b.id).items], b.reason) for b in closed]
    finally:
        store.close()
    rehearsed = [(c.bucket.group, [v["n"] for v in c.bucket.items], c.bucket.reason) for c in rehearsal.closed]
    assert len(from_store) > 10
    assert sorted(from_store, key=str) == sorted(rehearsed, key=str)


def test_a_dry_run_shows_each_bucket_with_its_items_and_reason() -> None:
    register_all()
    mapping = ROOT / "mappings" / "servicenow-daily-summary.yaml"
    result = CliRunner().invoke(app, ["run", str(mapping), "--case", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "bucket   1 · group INC0010001 · 2 item(s)\n         closed by at: 0 0 * * *\n" in result.output
    assert '  item 2  {"call_id": "CALL-3", "incident_number": "INC0010001"' in result.output
    assert "collect  into the bucket of group INC0010002" in result.output
    refused = CliRunner().invoke(app, ["run", str(mapping), "--event", str(ROOT / "samples/events/call-ended.json")])
    assert refused.exit_code == 2
    assert (
        "is a collecting mapping: `wlmap run` rehearses it with stubs; use --dry-run or --case NAME" in refused.output
    )
