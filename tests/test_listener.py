"""The listener: signatures, limits, refusals with stable reasons, commit-then-acknowledge, health and metrics.

Every case goes over real HTTP to uvicorn on 127.0.0.1 (httpx, or a raw socket for what httpx will not
send: a body refused before it is read, malformed requests). The store is a real SQLite file.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import serve

from mapper.events import Event
from mapper.service.listener import ListenerOptions, create_app
from mapper.service.metrics import Metrics
from mapper.service.signature import SignatureScheme, sign
from mapper.service.store import NewDelivery, NewJob, Store, StoreUnavailable
from mapper.service.store.sqlite import SqliteStore

SECRET = "current-secret"
OLD_SECRET = "previous-secret"
BODY = b'{"data": {"id": "U2NlbmFyaW9TZXNzaW9uLTQ0MTIw", "url": "https://cms.scopear.com/api/v3/graphql/object/x"}}'
TOPIC = "scenario_session/completed"


def route(event: Event, *, unsigned: bool = False) -> Sequence[NewJob]:
    """Stands in for the mappings: one wants completed scenario sessions, another (which allows unsigned
    webhooks) legacy updates of calls."""
    if event.topic == TOPIC and not unsigned:
        return [NewJob("m", event.resource_id, "m.yaml")]
    if event.generation == "legacy" and event.resource_type == "Call":
        return [NewJob("legacy", event.resource_id, "legacy.yaml")]
    return []


def headers(
    body: bytes = BODY, secret: str | None = SECRET, delivery_id: str | None = "d-1", topic: str = TOPIC, **extra: str
) -> dict[str, str]:
    out = {"content-type": "application/json", "x-scope-topic": topic, "x-scope-topic-version": "1.1"}
    if delivery_id is not None:
        out["x-scope-webhook-id"] = delivery_id
    if secret is not None:
        out["x-scope-hmac-sha256"] = sign(body, secret)
    out.update(extra)
    return out


class Harness:
    def __init__(self, tmp_path: Path, store: Store | None = None, **options: Any) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.store_path = tmp_path / "wlmap.db"
        self.store = store or SqliteStore(self.store_path)
        self.metrics = Metrics()
        self.woken = 0
        settings = {"secrets": (OLD_SECRET, SECRET), **options}
        self.app = create_app(
            self.store,
            route,
            ListenerOptions(**settings),
            metrics=self.metrics,
            on_stored=self.wake,
            readiness=lambda: self.problem,
        )
        self.problem: str | None = None

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path)
    yield made
    made.store.close()


@contextmanager
def served(app: Any) -> Iterator[httpx.Client]:
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


@pytest.fixture
def client(harness: Harness) -> Iterator[httpx.Client]:
    with served(harness.app) as http:
        yield http


def post(client: httpx.Client, body: bytes = BODY, **kwargs: Any) -> Any:
    return client.post("/webhooks", content=body, headers=headers(body, **kwargs))


# ------------------------------------------------------------------------------------------ accepting


def test_a_signed_webhook_is_stored_raw_with_its_job_before_the_answer(client: httpx.Client, harness: Harness) -> None:
    answer = post(client)
    assert answer.status_code == 200
    assert answer.json() == {"status": "accepted", "id": 1, "jobs": [1]}
    [claimed] = harness.store.claim(10, 30.0)
    assert claimed.body == BODY
    assert ("x-scope-hmac-sha256", sign(BODY, SECRET)) in claimed.headers
    assert claimed.resource_key == "U2NlbmFyaW9TZXNzaW9uLTQ0MTIw" and claimed.delivery_id == "d-1"
    assert harness.store.delivery(1).signature == "verified"
    assert harness.woken == 1


def test_the_previous_secret_still_works_during_a_rotation(client: httpx.Client) -> None:
    assert post(client, secret=OLD_SECRET).status_code == 200
    refused = post(client, secret="someone-else", delivery_id="d-2")
    assert refused.status_code == 401 and refused.json() == {"error": "signature does not match"}


def test_an_event_no_mapping_wants_is_stored_as_ignored(client: httpx.Client, harness: Harness) -> None:
    answer = post(client, topic="user/created")
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    [row] = harness.store.deliveries(statuses=["ignored"])
    assert row.body == BODY and harness.woken == 0
    assert harness.metrics.ignored.value() == 1


def test_a_repeated_delivery_is_acknowledged_as_duplicate_and_not_run_twice(
    client: httpx.Client, harness: Harness
) -> None:
    first = post(client)
    again = post(client)
    assert again.status_code == 200 and again.json() == {"duplicate": True, "id": first.json()["id"]}
    assert len(harness.store.jobs()) == 1
    assert harness.metrics.duplicates.value() == 1


def test_a_legacy_body_without_an_id_is_deduplicated_by_content(client: httpx.Client, harness: Harness) -> None:
    legacy = b'{"time": "2020-10-20T18:06:02Z", "event": "update", "type": "resource", "data": {}}'
    hdrs = {"content-type": "application/json", "x-scope-hmac-sha256": sign(legacy, SECRET)}
    assert client.post("/webhooks", content=legacy, headers=hdrs).json()["status"] == "ignored"
    assert client.post("/webhooks", content=legacy, headers=hdrs).json()["duplicate"] is True


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.scope+json"])
def test_json_content_types_are_accepted(client: httpx.Client, content_type: str) -> None:
    hdrs = headers()
    del hdrs["content-type"]
    hdrs["content-type"] = content_type
    assert client.post("/webhooks", content=BODY, headers=hdrs).status_code == 200


def test_a_webhook_without_a_content_type_is_415(client: httpx.Client, harness: Harness) -> None:
    """The docs promise 415 unless JSON; a missing type was accepted before."""
    hdrs = headers()
    del hdrs["content-type"]
    answer = client.post("/webhooks", content=BODY, headers=hdrs)
    assert (answer.status_code, answer.json()) == (415, {"error": "content type must be application/json"})
    assert harness.store.deliveries() == []


def test_credential_headers_a_proxy_adds_are_stored_masked(client: httpx.Client, harness: Harness) -> None:
    extra = {"authorization": "Basic cHJveHk6Y2FuYXJ5LXBhc3N3b3Jk", "cookie": "session=canary-cookie-value"}
    assert post(client, **extra).status_code == 200
    [claimed] = harness.store.claim(10, 30.0)
    stored = dict(claimed.headers)
    assert stored["authorization"] == "***" and stored["cookie"] == "***"
    assert stored["x-scope-hmac-sha256"] == sign(BODY, SECRET)  # what the signature needs is kept
    harness.store.close()
    raw = (harness.store_path.read_bytes() if harness.store_path.exists() else b"") + b"".join(
        path.read_bytes() for path in harness.store_path.parent.glob("wlmap.db-*")
    )
    assert b"canary-cookie-value" not in raw and b"cHJveHk6Y2FuYXJ5LXBhc3N3b3Jk" not in raw


# ----------------------------------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing signature header"),
        ("", "malformed signature header"),
        ("not base64 at all!", "malformed signature header"),
        ("c2hvcnQ=", "malformed signature header"),  # valid base64, wrong length
        ("=" * 44, "malformed signature header"),
        ("A" * 43 + "=", "signature does not match"),
    ],
)
def test_a_bad_signature_is_401_with_its_reason_and_nothing_is_stored(
    client: httpx.Client, harness: Harness, signature: str | None, reason: str
) -> None:
    hdrs = headers(secret=None)
    if signature is not None:
        hdrs["x-scope-hmac-sha256"] = signature
    answer = client.post("/webhooks", content=BODY, headers=hdrs)
    assert (answer.status_code, answer.json()) == (401, {"error": reason})
    assert harness.store.deliveries() == []


def test_a_signature_over_other_bytes_is_refused(client: httpx.Client) -> None:
    hdrs = headers(BODY)
    answer = client.post("/webhooks", content=BODY.replace(b"0", b"1"), headers=hdrs)
    assert answer.status_code == 401


def test_two_different_signature_headers_are_malformed(client: httpx.Client) -> None:
    hdrs = [*headers().items(), ("x-scope-hmac-sha256", sign(BODY, "other"))]
    answer = client.post("/webhooks", content=BODY, headers=hdrs)
    assert (answer.status_code, answer.json()["error"]) == (401, "malformed signature header")


LEGACY_CALL = b'{"time": "2024-05-01T10:12:31Z", "event": "update", "type": "resource", "data": {"resource-id": "Q2FsbA==", "resource-type": "Call"}}'  # noqa: E501
JSON_ONLY = {"content-type": "application/json"}


def test_allow_unsigned_takes_webhooks_without_a_signature_but_not_bad_ones(tmp_path: Path) -> None:
    harness = Harness(tmp_path, allow_unsigned=True)
    with served(harness.app) as client:
        assert client.post("/webhooks", content=LEGACY_CALL, headers=JSON_ONLY).status_code == 200
        assert harness.store.delivery(1).signature == "unsigned"
        hdrs = headers(delivery_id="d-2", secret=None, **{"x-scope-hmac-sha256": "A" * 43 + "="})
        assert client.post("/webhooks", content=BODY, headers=hdrs).status_code == 401
    harness.store.close()


def test_allow_unsigned_refuses_a_forged_subscription_delivery(tmp_path: Path) -> None:
    """Issue 15: an unsigned POST with X-Scope-Topic was accepted and its jobs ran."""
    harness = Harness(tmp_path, allow_unsigned=True)
    with served(harness.app) as client:
        forged = client.post("/webhooks", content=BODY, headers=headers(secret=None))
        assert (forged.status_code, forged.json()) == (401, {"error": "missing signature header"})
        legacy_with_scope_header = {**JSON_ONLY, "x-scope-domain": "scopear.com"}
        answer = client.post("/webhooks", content=LEGACY_CALL, headers=legacy_with_scope_header)
        assert (answer.status_code, answer.json()) == (401, {"error": "missing signature header"})
        bare = client.post("/webhooks", content=BODY, headers=JSON_ONLY)  # subscription-shaped, no headers
        assert (bare.status_code, bare.json()) == (401, {"error": "missing signature header"})
        scenario = LEGACY_CALL.replace(b'"Call"', b'"ScenarioSession"')  # no mapping allows it unsigned
        refused = client.post("/webhooks", content=scenario, headers=JSON_ONLY)
        assert (refused.status_code, refused.json()) == (401, {"error": "no mapping accepts this webhook unsigned"})
    assert harness.store.deliveries() == [] and harness.store.jobs() == []
    harness.store.close()


def test_unsigned_webhooks_only_from_the_allowed_networks(tmp_path: Path) -> None:
    allowed = Harness(tmp_path, allow_unsigned=True, unsigned_from=(ipaddress.ip_network("127.0.0.0/8"),))
    with served(allowed.app) as client:
        assert client.post("/webhooks", content=LEGACY_CALL, headers=JSON_ONLY).status_code == 200
    allowed.store.close()
    other = Harness(tmp_path / "other", allow_unsigned=True, unsigned_from=(ipaddress.ip_network("10.9.0.0/16"),))
    with served(other.app) as client:
        answer = client.post("/webhooks", content=LEGACY_CALL, headers=JSON_ONLY)
        assert (answer.status_code, answer.json()) == (
            401,
            {"error": "unsigned webhooks are not accepted from this address"},
        )
        assert post(client).status_code == 200  # signed webhooks come from anywhere
    other.store.close()


def test_without_secrets_everything_signed_is_refused(tmp_path: Path) -> None:
    harness = Harness(tmp_path, secrets=())
    with served(harness.app) as client:
        answer = post(client)
        assert (answer.status_code, answer.json()) == (401, {"error": "no secret configured"})
    harness.store.close()


def test_the_signature_scheme_is_configurable(tmp_path: Path) -> None:
    scheme = SignatureScheme(header="x-signature", encoding="hex")
    harness = Harness(tmp_path, scheme=scheme)
    with served(harness.app) as client:
        hdrs = headers(secret=None, **{"x-signature": sign(BODY, SECRET, scheme)})
        assert client.post("/webhooks", content=BODY, headers=hdrs).status_code == 200
    harness.store.close()


# ------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(client: httpx.Client, method: str) -> None:
    answer = client.request(method, "/webhooks")
    assert answer.status_code == 405 and answer.json() == {"error": "method not allowed"}
    assert answer.headers["allow"] == "POST"


def test_a_wrong_content_type_is_415(client: httpx.Client) -> None:
    hdrs = headers(**{"content-type": "text/plain"})
    answer = client.post("/webhooks", content=BODY, headers=hdrs)
    assert (answer.status_code, answer.json()) == (415, {"error": "content type must be application/json"})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"", "body is not JSON"),
        (b'{"a": NaN}', "body is not JSON"),
        (b"\xff\xfe{}", "body is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b'"text"', "body is not a JSON object"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_400(
    client: httpx.Client, harness: Harness, body: bytes, reason: str
) -> None:
    answer = post(client, body)
    assert (answer.status_code, answer.json()) == (400, {"error": reason})
    assert harness.store.deliveries() == []


def test_a_huge_delivery_id_is_400(client: httpx.Client) -> None:
    answer = post(client, delivery_id="x" * 300)
    assert (answer.status_code, answer.json()) == (400, {"error": "delivery id is too long"})


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    harness = Harness(tmp_path, max_body=1000)
    with served(harness.app) as client:
        big = json.dumps({"data": {"id": "x" * 2000}}).encode()
        answer = post(client, big)
        assert (answer.status_code, answer.json()) == (413, {"error": "body too large"})

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            for _ in range(20):
                yield b" " * 100

        streamed = client.post("/webhooks", content=chunks(), headers=headers())
        assert streamed.status_code == 413
        assert post(client, b'{"data": {"id": "small"}}').status_code == 200
    harness.store.close()


def test_unknown_paths_are_404_in_json(client: httpx.Client) -> None:
    answer = client.get("/nothing-here")
    assert (answer.status_code, answer.json()) == (404, {"error": "not found"})


@pytest.mark.parametrize("path", ["/webhooks/", "/healthz/", "/readyz/", "/metrics/"])
def test_a_trailing_slash_is_404_never_a_redirect_to_the_host_the_request_names(
    client: httpx.Client, path: str
) -> None:
    """Starlette would answer 307 to `http://<Host header>/healthz`: an open redirect for anyone who can
    make a browser follow a link to the listener. Paths are exact."""
    answer = client.get(path, headers={"Host": "evil.example"})
    assert (answer.status_code, answer.json()) == (404, {"error": "not found"})
    assert "location" not in answer.headers


# ---------------------------------------------------------------------------------------- store failure


class BrokenStore(SqliteStore):
    """Fails inside the write transaction, where a real disk error would, whichever way ingest is called."""

    def _ingest(self, tx: Any, delivery: NewDelivery, jobs: tuple[NewJob, ...], window: float) -> Any:
        raise StoreUnavailable("the store cannot write: disk I/O error")

    def _loop_connection(self) -> Any:  # webhooks in groups (mapper/store/sqlite.py): a real disk error
        raise sqlite3.OperationalError("disk I/O error")


def test_a_store_that_cannot_write_means_503_with_retry_after(tmp_path: Path) -> None:
    harness = Harness(tmp_path, store=BrokenStore(tmp_path / "broken.db"))
    with served(harness.app) as client:
        answer = post(client)
        assert (answer.status_code, answer.json()) == (503, {"error": "store unavailable"})
        assert answer.headers["retry-after"] == "5"
    harness.store.close()


def test_a_full_store_answers_503_never_2xx_for_what_it_did_not_keep(tmp_path: Path) -> None:
    harness = Harness(tmp_path, store=SqliteStore(tmp_path / "small.db", max_bytes=300_000))
    statuses = []
    with served(harness.app) as client:
        for n in range(16):
            body = json.dumps({"data": {"id": f"R{n}", "pad": "x" * 30_000}}).encode()
            statuses.append(post(client, body, delivery_id=f"d-{n}").status_code)
    assert set(statuses) == {200, 503}
    acknowledged = statuses.count(200)
    assert len(harness.store.deliveries(limit=100)) == acknowledged
    harness.store.close()


# ------------------------------------------------------------------------------------ health and metrics


def test_health_and_readiness(client: httpx.Client, harness: Harness) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    harness.problem = "no mappings loaded"
    answer = client.get("/readyz")
    assert (answer.status_code, answer.json()) == (503, {"error": "no mappings loaded"})


_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$"
)


def parse_metrics(text: str) -> dict[str, float]:
    """A strict reading of the Prometheus text format: every line is HELP, TYPE or a well-formed sample."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram") and name not in declared
            declared[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", match.group(1))
        assert family in declared or match.group(1) in declared, line
        samples[line.rsplit(" ", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return samples


def test_metrics_are_valid_prometheus_text(client: httpx.Client, harness: Harness) -> None:
    post(client)
    post(client)
    post(client, secret="wrong", delivery_id="d-9")
    answer = client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse_metrics(answer.text)
    assert samples["wlmap_webhooks_received_total"] == 3
    assert samples["wlmap_webhooks_acknowledged_total"] == 2
    assert samples["wlmap_webhooks_duplicate_total"] == 1
    assert samples['wlmap_webhooks_rejected_total{reason="401"}'] == 1
    assert samples['wlmap_queue_jobs{state="pending"}'] == 1
    assert samples['wlmap_ack_seconds_bucket{le="+Inf"}'] == samples["wlmap_ack_seconds_count"] == 2
    buckets = [v for k, v in samples.items() if k.startswith("wlmap_ack_seconds_bucket")]
    assert buckets == sorted(buckets)


def test_metric_labels_are_escaped() -> None:
    metrics = Metrics()
    metrics.runs.inc(mapping='we"ird\\name\n', outcome="done")
    text = metrics.render()
    assert 'mapping="we\\"ird\\\\name\\n"' in text
    parse_metrics(text)


def test_each_service_counts_in_a_registry_of_its_own_beside_the_process_metrics() -> None:
    first, second = Metrics(), Metrics()
    first.received.inc()
    first.runs.inc(mapping="m", outcome="done")
    assert (first.received.value(), second.received.value()) == (1, 0)
    assert (first.runs.value(mapping="m", outcome="done"), second.runs.value(mapping="m", outcome="done")) == (1, 0)
    samples = parse_metrics(second.render())
    assert samples["wlmap_webhooks_received_total"] == 0
    assert samples["process_cpu_seconds_total"] > 0 and samples["process_resident_memory_bytes"] > 0


# --------------------------------------------------------------------------------------- on the wire


def _raw(url: str, request: bytes, then: bytes = b"", wait: float = 5.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(request)
        if then:
            sock.sendall(then)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_a_declared_huge_body_is_refused_before_it_is_sent(harness: Harness) -> None:
    with serve(harness.app) as url:
        started = time.monotonic()
        head = (
            b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 104857600\r\n\r\n{"data":'
        )  # 100 MiB promised, 8 bytes sent
        answer = _raw(url, head)
        assert answer.startswith(b"HTTP/1.1 413")
        assert time.monotonic() - started < 3


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(harness: Harness) -> None:
    with serve(harness.app) as url:
        head = (
            b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b" " * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17))  # 1.06 MiB, not terminated
        assert _raw(url, head, body).startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nx-scope-hmac-sha256: \xff\xfe\xfd\r\n\r\n{}",
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nx-scope-hmac-sha256: "
        + b"A" * 60000
        + b"\r\n\r\n{}",
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"GARBAGE\r\n\r\n",
    ],
)
def test_malformed_requests_are_refused_never_a_server_error(harness: Harness, request_bytes: bytes) -> None:
    with serve(harness.app) as url:
        answer = _raw(url, request_bytes)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
        assert status == 0 or 400 <= status < 500, answer[:200]
        assert harness.store.deliveries() == []


# ----------------------------------------------------------------------------------------- slow clients


def _head(length: int) -> bytes:
    return (
        b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length
    )


def test_a_body_shorter_than_its_content_length_is_answered_408_and_closed(tmp_path: Path) -> None:
    """Issue 17: such a request stayed open indefinitely."""
    harness = Harness(tmp_path, body_timeout=1.0)
    with serve(harness.app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(_head(500) + b'{"data": {}')
            answer = b""
            while chunk := sock.recv(65536):  # the server answers, then closes: recv ends with b""
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
            assert b'{"error":"body not received in time"}' in answer
            assert 0.9 < time.monotonic() - started < 5
        assert httpx.get(f"{url}/healthz").status_code == 200
    assert harness.store.deliveries() == []
    harness.store.close()


def test_a_body_sent_a_byte_a_second_is_cut_off_while_others_are_answered(tmp_path: Path) -> None:
    harness = Harness(tmp_path, body_timeout=2.0)
    with serve(harness.app) as url, httpx.Client(base_url=url, timeout=5) as client:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(_head(len(BODY)))
            started = time.monotonic()
            answer = b""
            for byte in BODY:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:  # closed by the server
                    break
                assert client.get("/healthz").status_code == 200  # the listener keeps answering meanwhile
                sock.settimeout(1.0)
                try:
                    answer += sock.recv(65536)
                except TimeoutError:
                    continue
                if answer:
                    break
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
            assert time.monotonic() - started < 6
        assert post(client).status_code == 200
    harness.store.close()
