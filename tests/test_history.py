"""Reading a stored trace as a timeline, why a job waits, and what a replay changed in its requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mapper.report.timeline import timeline_text
from mapper.service import history, timeline
from mapper.service.store import Finish, NewAction, NewDelivery, NewJob
from mapper.service.store.sqlite import SqliteStore


def trace(body: dict[str, Any], status: int, outcome: str, reason: str) -> dict[str, Any]:
    """A trace shaped as the runner writes it (run.trace): stages with exchanges, then the outcome."""
    return {
        "mapping": "sap",
        "file": "/srv/mappings/sap.yaml",
        "digest": "abc123",
        "event": {"problems": ["resource id is a number, not text; used 7"]},
        "stages": [
            {"stage": "extract", "values": {"id": "7"}},
            {
                "stage": "step",
                "name": "update",
                "ran": True,
                "exchanges": [
                    {
                        "kind": "csrf-fetch",
                        "method": "GET",
                        "url": "https://sap/x",
                        "request_headers": {"x-csrf-token": "***"},
                        "status": 200,
                    },
                    {
                        "kind": "request",
                        "method": "PATCH",
                        "url": "https://sap/notification/7",
                        "request_headers": {"authorization": "***", "user-agent": "wlmap"},
                        "request_body": body,
                        "status": status,
                        "duration_ms": 12.0,
                        "response_body": {"error": "no"} if status >= 400 else None,
                    },
                ],
                "captured": {},
            },
        ],
        "outcome": {"status": outcome, "reason": reason, "step": "update" if outcome != "done" else None},
    }


def test_a_trace_read_as_a_timeline() -> None:
    read = timeline.read(trace({"text": "a"}, 404, "dead", "step `update`: sap answered 404"))
    assert read.notes == ("resource id is a number, not text; used 7",)
    [extract, step] = read.entries
    assert (extract.mark, step.mark, step.title) == ("ok", "failed", "step `update`")
    csrf, patch = step.exchanges
    assert csrf.label == "CSRF token fetch" and not csrf.failed
    assert patch.failed and patch.status == 404 and ("user-agent", "wlmap") not in patch.headers
    text = timeline_text(read)
    assert "FAILED  step `update`" in text and "← 404 in 12 ms" in text and "outcome dead at step `update`" in text
    assert not timeline.is_trace({"request": {}}) and timeline.is_trace({"stages": []})


def test_a_replay_shows_what_changed_in_its_requests(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "wlmap.db")
    try:
        delivery = NewDelivery((), b'{"id": 7}', "sha", "d-1", "id:d-1", summary="call 7")
        store.ingest(delivery, [NewJob("sap", "7", "/srv/mappings/sap.yaml")], dedupe_window=300)
        [first] = store.claim(1, 60.0)
        dead = trace({"text": "old"}, 404, "dead", "step `update` (/srv/mappings/sap.yaml:9): sap answered 404")
        store.finish(first.job, first.token, Finish("dead", dead["outcome"]["reason"], "update", json.dumps(dead)))
        [asked] = store.request([NewAction("replay", "alice", job=1, was="dead")])
        made = store.carry_out_replay(asked)
        assert made == 2
        view = history.job_view(store, 2)
        assert view.diff is None  # not run yet
        [second] = store.claim(1, 60.0)
        done = trace({"text": "new"}, 200, "done", "every step succeeded")
        store.finish(second.job, second.token, Finish("done", "every step succeeded", None, json.dumps(done)))
        view = history.job_view(store, 2)
        assert view.diff is not None
        assert '-    "text": "old"' in view.diff and '+    "text": "new"' in view.diff
        old = history.job_view(store, 1)
        assert old.reason == "step `update` (sap.yaml:9): sap answered 404"  # the file, not its folder
        assert [h.who for h in old.history] == ["Scope AR", "service", "service", "alice", "service"]
        assert "replay job 1 (was dead): made job 2" in [h.what for h in old.history]
    finally:
        store.close()


def test_why_a_job_waits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "wlmap.db")
    try:
        for n in (1, 2):
            delivery = NewDelivery((), b"{}", "sha", f"d-{n}", f"id:d-{n}")
            store.ingest(delivery, [NewJob("sap", "R1", "/srv/sap.yaml")], dedupe_window=300)
            if n == 1:
                [claimed] = store.claim(2, 60.0)  # running: the next job of R1 waits for it
        assert history.job_view(store, 2).waiting == "waiting behind job 1 for the same resource"
        at = store.clock() + 300
        store.finish(claimed.job, claimed.token, Finish("retry", "503", next_attempt_at=at, max_attempts=8))
        assert history.job_view(store, 1).waiting == f"next try at {history.when(at)} (attempt 2 of 8)"
    finally:
        store.close()
