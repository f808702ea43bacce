"""`wlmap demo`: the shipped mappings end to end on this machine, with fake systems, and what the store kept.

It starts the fakes of mapper.fakes on 127.0.0.1 (Scope AR's GraphQL API, ServiceNow, SAP, Maximo, Salesforce,
an asset register), starts the real listener (`wlmap run --serve`, a child process) with the mappings' env
pointing at them, sends signed webhooks made from samples/, waits until every job is settled, stops the
listener and prints `wlmap events list`. Maximo is given a wrong API key on purpose, so one job is parked dead
with its reason, as a real failure would be. The store is DEMO_STORE in the working folder, made anew each time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from mapper.fakes import (
    FakeAssetRegister,
    FakeMaximo,
    FakeSalesforce,
    FakeSap,
    FakeScope,
    FakeServer,
    FakeServiceNow,
    Samples,
)
from mapper.service import options as defaults

if TYPE_CHECKING:
    from mapper.service.operations import EventLine

DEMO_STORE: Final = "demo.db"
SETTLED_WAIT: Final = 60.0  # seconds the jobs get to finish (a run here takes milliseconds)
UNSETTLED: Final = ("pending", "running")


@dataclass(frozen=True)
class Webhook:
    label: str  # what it is, for the reader
    body: Path
    headers: Path | None = None


def demo_command(
    mappings: Annotated[Path, typer.Option("--mappings", help="The mappings to run.")] = Path(defaults.MAPPINGS),
    samples: Annotated[Path, typer.Option("--samples", help="Saved webhooks and answers the fakes give.")] = Path(
        "samples"
    ),
) -> None:
    """Run the shipped mappings against fake systems on 127.0.0.1 and show the events (store: demo.db)."""
    for folder, what in ((mappings, "mappings"), (samples, "samples")):
        if not folder.is_dir():
            typer.echo(f"wlmap demo: no `{folder}` folder here: run it from a checkout of wlmap ({what})", err=True)
            raise typer.Exit(2)
    for suffix in ("", "-wal", "-shm"):
        Path(DEMO_STORE + suffix).unlink(missing_ok=True)
    saved = Samples(samples)
    with tempfile.TemporaryDirectory(prefix="wlmap-demo-") as work, _fakes(saved) as (env, shown):
        typer.echo("Fake systems on 127.0.0.1, answering from samples/:")
        for name, url in shown:
            typer.echo(f"  {name:<17} {url}")
        secret = secrets.token_urlsafe(24)
        with _listener(mappings, env, secret, Path(work) / "listener.log") as url:
            typer.echo(f"Listener (wlmap run --serve) on {url}, store {DEMO_STORE}. Signed webhooks sent:")
            for webhook in _webhooks(saved, Path(work)):
                typer.echo(f"  {_send(webhook, url, secret)}  {webhook.label}")
            settled = _wait_until_settled()
    typer.echo(f"\n$ wlmap events list --store {DEMO_STORE}")
    lines = _events()
    from mapper.report.events import render_table

    typer.echo(render_table(lines))
    dead = [line for line in lines if line.status == "dead"]
    done = [line for line in lines if line.status == "done"]
    skipped = sum(line.status == "skipped" for line in lines)
    typer.echo(
        f"\n{len(done)} done, {skipped} skipped, {len(dead)} parked (dead). Every mapping subscribed to "
        "scenario_session/completed sees each session,\nand skips, with the reason, those whose deep link did not "
        "name its record."
    )
    for line in dead:
        typer.echo(f"Job {line.id} ({line.mapping}) is parked: {line.reason}")
    if dead:
        typer.echo(
            f"(Maximo was given a wrong API key on purpose.) Every attempt, secrets masked: "
            f"wlmap events show {dead[0].id} --store {DEMO_STORE}"
        )
    raise typer.Exit(0 if settled and done else 1)


@contextlib.contextmanager
def _fakes(samples: Samples) -> Iterator[tuple[dict[str, str], list[tuple[str, str]]]]:
    """Every fake, started; the env the shipped mappings read, and (name, URL) to show."""
    password, sap_password, client_secret = (secrets.token_urlsafe(12) for _ in range(3))
    scope_token, assets_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    try:
        fakes = {
            "Scope AR GraphQL": FakeServer(FakeScope(samples, scope_token)),
            "ServiceNow": FakeServer(FakeServiceNow(samples, "wlmap.demo", password)),
            "SAP S/4HANA": FakeServer(FakeSap(samples, "WLMAP_DEMO", sap_password)),
            "Maximo": FakeServer(FakeMaximo(samples, secrets.token_urlsafe(16))),
            "Salesforce": FakeServer(FakeSalesforce(samples, "wlmap-demo-client", client_secret)),
            "asset register": FakeServer(FakeAssetRegister(samples, assets_token)),
        }
    except (OSError, ValueError, KeyError) as exc:
        typer.echo(f"wlmap demo: the samples cannot be read: {exc}", err=True)
        raise typer.Exit(1) from None
    url = {name: server.url for name, server in fakes.items()}
    env = {
        "SCOPE_GRAPHQL_URL": url["Scope AR GraphQL"] + "/api/v3/graphql",
        "SCOPE_API_TOKEN": scope_token,
        "SNOW_BASE_URL": url["ServiceNow"],
        "SNOW_USER": "wlmap.demo",
        "SNOW_PASSWORD": password,
        "SAP_BASE_URL": url["SAP S/4HANA"],
        "SAP_CLIENT": "100",
        "SAP_USER": "WLMAP_DEMO",
        "SAP_PASSWORD": sap_password,
        "MAXIMO_BASE_URL": url["Maximo"],
        "MAXIMO_APIKEY": "a-wrong-api-key",  # on purpose: one target refuses, and the job is parked with why
        "SF_DOMAIN_URL": url["Salesforce"],
        "SF_CLIENT_ID": "wlmap-demo-client",
        "SF_CLIENT_SECRET": client_secret,
        "ASSETS_GRAPHQL_URL": url["asset register"] + "/graphql",
        "ASSETS_API_TOKEN": assets_token,
    }
    shown = [(name, env["SCOPE_GRAPHQL_URL"] if name == "Scope AR GraphQL" else u) for name, u in url.items()]
    shown = [(n, u + ("  (given a wrong API key on purpose)" if n == "Maximo" else "")) for n, u in shown]
    with contextlib.ExitStack() as running:
        for server in fakes.values():
            running.enter_context(server)
        yield env, shown


@contextlib.contextmanager
def _listener(mappings: Path, env: dict[str, str], secret: str, log: Path) -> Iterator[str]:
    """`wlmap run --serve` in a child process until the block ends; the webhook URL once it is ready."""
    port = _free_port()
    command = [sys.executable, "-m", "mapper.cli", "run", "--serve", str(mappings), "--store", DEMO_STORE]
    command += ["--port", str(port), "--workers", "4"]
    environment = {**os.environ, **env, defaults.SECRETS_ENV: secret}
    environment.pop(defaults.STORE_ENV, None)
    with log.open("wb") as output:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=environment)
        try:
            _wait_ready(child, port, log)
            yield f"http://127.0.0.1:{port}{defaults.WEBHOOK_PATH}"
        finally:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _wait_ready(child: subprocess.Popen[bytes], port: int, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            typer.echo(f"wlmap demo: the listener did not start:\n{log.read_text('utf-8', 'replace')}", err=True)
            raise typer.Exit(1)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    typer.echo(f"wlmap demo: the listener was not ready after 30 s:\n{log.read_text('utf-8', 'replace')}", err=True)
    raise typer.Exit(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _webhooks(samples: Samples, work: Path) -> list[Webhook]:
    """A call that ended (ServiceNow); a completed session per saved session (SAP, Salesforce, the asset
    register), as the subscription's thin body; a custom-query body (Maximo, which reads the session from it)."""
    events = samples.folder / "events"
    thin_headers = events / "scenario-session-completed.headers.json"
    hooks = [Webhook("call ended (legacy webhook)", events / "call-ended.json")]
    thin = samples.json("events/scenario-session-completed.json")
    for name in ("scenario-session.json", "scenario-session-salesforce.json", "scenario-session-asset.json"):
        node = samples.json(f"graphql/{name}")["data"]["node"]
        url = thin["data"]["url"].rsplit("/", 1)[0] + "/" + node["id"]
        body = {"data": {**thin["data"], "id": node["id"], "url": url}}
        file = work / f"{node['id']}.json"
        file.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        deep_link = ", ".join(f"{k}={v}" for k, v in node["externalData"].items())
        hooks.append(Webhook(f"scenario session completed ({deep_link})", file, thin_headers))
    hooks.append(
        Webhook(
            "scenario session completed, custom-query body (wonum=7211)",
            events / "scenario-session-completed-custom-query.json",
            events / "scenario-session-completed-custom-query.headers.json",
        )
    )
    return hooks


def _send(webhook: Webhook, url: str, secret: str) -> str:
    from mapper.service.operations import OpsError, send

    try:
        status, _, _ = send(webhook.body, url, secret, headers_file=webhook.headers, delivery_id=str(uuid.uuid4()))
    except OpsError as exc:
        return f"not sent ({exc})"
    return str(status)


def _wait_until_settled() -> bool:
    """Whether every job left pending/running in time (done, skipped, parked, or waiting for a retry)."""
    deadline = time.monotonic() + SETTLED_WAIT
    while time.monotonic() < deadline:
        if not any(line.status in UNSETTLED for line in _events()):
            return True
        time.sleep(0.2)
    return False


def _events() -> list[EventLine]:
    from mapper.service.operations import list_events, open_existing

    store = open_existing(DEMO_STORE)
    try:
        return list_events(store)
    finally:
        store.close()
