"""Canary secrets through every output: no secret, in any form it can take, leaves the process or enters the store.

The real service (`wlmap run --serve`, the real runner) runs a mapping against a target that echoes the
request's headers back — `Authorization: Basic …`, the session cookie and the CSRF token it handed out — in a
401 page, and a bearer-token API that echoes its token in a 200. The webhook comes through a proxy that added
its own `Authorization` and `Cookie`. Then every way out is searched for every canary in every form (as it is,
base64 of it and of `user:password`, URL-encoded, JSON-escaped): the service's log in text and in JSON,
`/metrics`, `wlmap events list/show`, `wlmap replay`, `wlmap run` live in text and JSON, and the raw bytes of
the SQLite files.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from fakes import FakeServer, Recorded, Reply
from test_service_support import ROOT, SECRET, Service, Target, signed_headers

USER = "svc-canary-user"
CANARIES = {
    "SAP_PASSWORD": "canary-sap-pw-41Xq/+=",
    "API_TOKEN": "canary-api-token-7Hd2",
    "csrf token": "canary-csrf-9Pw1",
    "session cookie": "canary-cookie-3Zr8",
    "proxy authorization": "canary-inbound-5Tg6",
    "proxy cookie": "canary-inbound-cookie-2Lk4",
    "webhook secret": SECRET,
}

MAPPING = """\
version: 1
name: canary
trigger:
  topics: [scenario_session/completed]
connections:
  api:
    base_url: "{{ env.TARGET_URL }}"
    auth: {bearer: {token: "{{ env.API_TOKEN }}"}}
  sap:
    base_url: "{{ env.TARGET_URL }}"
    auth: {basic: {username: "{{ env.SAP_USER }}", password: "{{ env.SAP_PASSWORD }}"}}
    csrf: {fetch_path: /svc/}
steps:
  - name: look-up
    connection: api
    method: GET
    path: /api/lookup
    capture: {echoed: body.you_sent}
  - name: update
    connection: sap
    method: PATCH
    path: /svc/thing
    json: {text: "seen {{ steps.look_up.echoed }} for {{ event.resource_id }}"}
"""


def forms(value: str) -> set[str]:
    """Every form a secret can take on the wire."""
    raw = value.encode()
    found = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        found |= {encoded.decode(), encoded.decode().rstrip("=")}
    return found


def every_form() -> dict[str, str]:
    """form → what it is a form of."""
    shown = {form: name for name, value in CANARIES.items() for form in forms(value)}
    pair = base64.b64encode(f"{USER}:{CANARIES['SAP_PASSWORD']}".encode()).decode()
    shown[pair] = "base64 of user:password"
    return shown


def leaks(where: str, data: bytes | str) -> list[str]:
    text = data if isinstance(data, bytes) else data.encode()
    return [f"{where}: {name} as {form!r}" for form, name in every_form().items() if form.encode() in text]


def _echo(request: Recorded) -> Reply:
    credentials_first = sorted(request.headers, key=lambda pair: pair[0] not in ("authorization", "cookie"))
    shown = "\n".join(f"{name}: {value}" for name, value in credentials_first)
    return Reply.text(f"<html><h1>401 Unauthorized</h1><pre>{shown}</pre></html>", status=401)


@pytest.fixture
def target() -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.route(
            "GET",
            "/svc/",
            Reply.json(
                {},
                headers=[
                    ("x-csrf-token", CANARIES["csrf token"]),
                    ("set-cookie", f"SAP_SESSIONID_X_100={CANARIES['session cookie']}; path=/; HttpOnly"),
                ],
            ),
        )
        server.route("PATCH", "/svc/thing", _echo)
        server.route(
            "GET",
            "/api/lookup",
            lambda request: Reply.json({"you_sent": request.header("authorization")}),
        )
        yield server


class CanaryService(Service):
    """The service with the real runner and the canary mapping."""

    def __init__(self, tmp_path: Path, server: FakeServer, log_format: str) -> None:
        tmp_path.mkdir()
        super().__init__(tmp_path, Target(url=server.url), env=self.mapping_env(server))
        (self.mappings / "effect.yaml").unlink()
        (self.mappings / "canary.yaml").write_text(MAPPING)
        self.log_format = log_format

    @staticmethod
    def mapping_env(server: FakeServer) -> dict[str, str]:
        return {
            "TARGET_URL": server.url,
            "SAP_USER": USER,
            "SAP_PASSWORD": CANARIES["SAP_PASSWORD"],
            "API_TOKEN": CANARIES["API_TOKEN"],
        }

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("--runner")
        del command[at : at + 2]
        return [*command, "--log-format", self.log_format, "--log-level", "DEBUG"]

    def webhook(self, delivery: str) -> httpx.Response:
        body = json.dumps({"data": {"id": f"U2Nl-{delivery}"}}).encode()
        headers = {
            **signed_headers(body, delivery),
            "authorization": f"Bearer {CANARIES['proxy authorization']}",
            "cookie": f"sid={CANARIES['proxy cookie']}",
        }
        return httpx.post(f"{self.url}/webhooks", content=body, headers=headers, timeout=10)


def wlmap(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mapper.cli", *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )
    return done.stdout + done.stderr


def test_no_canary_leaves_through_any_output_or_reaches_the_store(tmp_path: Path, target: FakeServer) -> None:
    found: list[str] = []
    outputs: dict[str, str] = {}
    for fmt in ("text", "json"):
        service = CanaryService(tmp_path / fmt, target, fmt)
        try:
            service.start()
            assert service.webhook(f"{fmt}-1").status_code == 200
            service.drain()
            outputs[f"/metrics ({fmt})"] = httpx.get(f"{service.url}/metrics").text
            env = {**service.env, "WLMAP_STORE": str(service.store)}
            cli = {  # while the service runs: it carries out the replay the command asks for
                "events list": ("events", "list"),
                "events show 1": ("events", "show", "1"),
                "events show d1": ("events", "show", "d1"),
                "replay 1": ("replay", "1"),
                "events show 2": ("events", "show", "2"),
            }
            for name, args in cli.items():
                outputs[f"wlmap {name} ({fmt})"] = wlmap(*args, env=env, cwd=service.dir)
            [(status, reason)] = service.query("SELECT status, last_reason FROM jobs WHERE id = 2")
            assert status == "dead" and "answered 401" in reason, reason
            outputs[f"/metrics after the replay ({fmt})"] = httpx.get(f"{service.url}/metrics").text
            assert service.terminate() == 0
        finally:
            service.close()
        outputs[f"service log ({fmt})"] = service.log.read_text()
        for path in sorted(service.store.parent.glob("wlmap.db*")):
            found += leaks(f"{path.name} ({fmt})", path.read_bytes())

    # `wlmap run` live, text and JSON, with the proxy's headers on the saved event.
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"data": {"id": "U2Nl-run"}}))
    headers = tmp_path / "headers.json"
    headers.write_text(
        json.dumps({"x-scope-topic": "scenario_session/completed", "authorization": CANARIES["proxy authorization"]})
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), **CanaryService.mapping_env(target)}
    mapping = tmp_path / "canary.yaml"
    mapping.write_text(MAPPING)
    for fmt in ("text", "json"):
        run = ("run", str(mapping), "--event", str(event), "--headers", str(headers), "--format", fmt)
        outputs[f"wlmap run ({fmt})"] = wlmap(*run, env=env, cwd=tmp_path)

    for where, text in outputs.items():
        found += leaks(where, text)
    assert found == []
    # The outputs are the real ones: the runs reached the target and their reasons are there, readable.
    assert target.requests_to("/svc/thing") and target.requests_to("/api/lookup")
    assert "answered 401" in outputs["wlmap events show 1 (text)"]
    assert "‹TARGET_URL›/svc/thing" in outputs["wlmap run (text)"]
    assert "Basic ***" in outputs["wlmap events show 1 (json)"] or "Basic ***" in outputs["wlmap events show 1 (text)"]
    json_lines = [json.loads(line) for line in outputs["service log (json)"].splitlines() if line.startswith("{")]
    assert any(line["level"] == "ERROR" and "answered 401" in line["message"] for line in json_lines)
