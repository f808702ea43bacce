"""The shipped mappings behind the real listener (issue 15): which of Scope's documented webhooks make which jobs.

The listener runs on 127.0.0.1 with a real SQLite store and the mappings in mappings/; webhooks are the samples,
signed with the test secret (a legacy webhook carries no X-Scope-* header at all).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes import serve
from test_service_support import ROOT, SECRET

from mapper.service.listener import ListenerOptions, create_app
from mapper.service.mappings import Mappings
from mapper.service.metrics import Metrics
from mapper.service.signature import sign
from mapper.service.store.sqlite import SqliteStore

SAMPLES = ROOT / "samples" / "events"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, SqliteStore]]:
    store = SqliteStore(tmp_path / "wlmap.db")
    mappings = Mappings([ROOT / "mappings"], {})
    mappings.load()
    app = create_app(store, mappings.route, ListenerOptions(secrets=(SECRET,)), metrics=Metrics())
    try:
        with serve(app) as url:
            yield url, store
    finally:
        store.close()


def post(url: str, sample: str, headers_sample: str | None = None, body: bytes | None = None) -> dict[str, object]:
    content = body if body is not None else (SAMPLES / sample).read_bytes()
    headers = json.loads((SAMPLES / headers_sample).read_text()) if headers_sample else {}
    headers = {k: v for k, v in headers.items() if k.lower() != "x-scope-hmac-sha256"}
    headers.update({"Content-Type": "application/json", "X-Scope-Hmac-Sha256": sign(content, SECRET)})
    answer = httpx.post(f"{url}/webhooks", content=content, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def mappings_of(store: SqliteStore, delivery: int) -> list[str]:
    return sorted(job.mapping for job in store.jobs(delivery=delivery))


@pytest.mark.parametrize("sample", ["call-updated.json", "call-updated-underscored.json", "call-ended.json"])
def test_a_legacy_call_webhook_reaches_the_servicenow_mapping(listener: tuple[str, SqliteStore], sample: str) -> None:
    """Resource type Call (as Scope names its call events) or CallSession; dashed or underscored keys."""
    url, store = listener
    stored = post(url, sample)
    assert stored["status"] == "accepted"
    # one work note per call, and the call collected for the incident's daily summary
    assert mappings_of(store, int(str(stored["id"]).lstrip("d"))) == [
        "servicenow-incident-call",
        "servicenow-incident-daily-calls",
    ]
    jobs = store.jobs(delivery=int(str(stored["id"]).lstrip("d")))
    [job] = [job for job in jobs if job.mapping == "servicenow-incident-call"]
    assert job.resource_key == "Q2FsbFNlc3Npb24tOTk4MjE="


def test_a_legacy_finished_session_reaches_sap_but_not_maximo(listener: tuple[str, SqliteStore]) -> None:
    url, store = listener
    stored = post(url, "scenario-session-finished.json")
    assert mappings_of(store, int(str(stored["id"]).lstrip("d"))) == ["sap-maintenance-notification"]


def test_the_completed_topic_reaches_sap_and_with_a_custom_query_body_maximo_too(
    listener: tuple[str, SqliteStore],
) -> None:
    url, store = listener
    thin = post(url, "scenario-session-completed.json", "scenario-session-completed.headers.json")
    # the Salesforce and GraphQL-target examples take every completed session too (their queries fetch the rest)
    assert mappings_of(store, int(str(thin["id"]).lstrip("d"))) == [
        "asset-inspection-graphql",
        "salesforce-work-order",
        "sap-maintenance-notification",
    ]
    custom = post(
        url,
        "scenario-session-completed-custom-query.json",
        "scenario-session-completed-custom-query.headers.json",
    )
    assert mappings_of(store, int(str(custom["id"]).lstrip("d"))) == [
        "asset-inspection-graphql",
        "maximo-sessions-done",
        "maximo-workorder-worklog",
        "salesforce-work-order",
        "sap-maintenance-notification",
    ]
