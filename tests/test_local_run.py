"""`make run` on a fresh machine: the listener starts with no secret configured (it makes one, once, in a file only
its owner reads, and prints it once), sums up the unset connection variables in one short block, and answers
/healthz; production's --require-secret (or WLMAP_REQUIRE_SECRET) keeps a missing secret an error."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from mapper.service.signature import sign

ROOT = Path(__file__).resolve().parents[1]
BODY = (ROOT / "samples" / "events" / "call-ended.json").read_bytes()
SHIPPED = ("asset-inspection-graphql", "maximo-workorder-worklog", "salesforce-work-order")


def fresh_env(**more: str) -> dict[str, str]:
    """This machine's environment without anything wlmap or the shipped mappings read: a fresh machine's."""
    keep = {k: v for k, v in os.environ.items() if not re.match(r"(WLMAP_|SCOPE_|SNOW_|SAP_|MAXIMO_|SF_|ASSETS_)", k)}
    return {**keep, "PYTHONPATH": str(ROOT), **more}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def listener(folder: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Path]]:
    """`wlmap run --serve` on the shipped mappings in `folder` (as `make run` starts it); its URL and its log."""
    port = free_port()
    log = folder / f"listener-{port}.log"
    command = [sys.executable, "-m", "mapper.cli", "run", "--serve", str(ROOT / "mappings"), "--store", "wlmap.db"]
    with log.open("wb") as output:
        child = subprocess.Popen(
            [*command, "--port", str(port), *args], cwd=folder, env=env or fresh_env(), stdout=output, stderr=output
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and child.poll() is None:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert child.poll() is None, log.read_text()
            yield url, log
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)


def post(url: str, secret: str) -> int:
    headers = {"content-type": "application/json", "x-scope-hmac-sha256": sign(BODY, secret)}
    return httpx.post(f"{url}/webhooks", content=BODY, headers=headers, timeout=10).status_code


def test_a_listener_given_no_secret_makes_one_once_and_signs_with_it(tmp_path: Path) -> None:
    with listener(tmp_path) as (url, log):
        secret_file = tmp_path / ".wlmap-secret"
        secret = secret_file.read_text().strip()
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert len(secret) >= 40
        assert post(url, secret) == 200
        assert post(url, "not-the-secret") == 401
        first = log.read_text()
    assert first.count(secret) == 1  # printed once, and masked in every log line after
    assert first.startswith("No webhook secret was set, so one was made and saved in .wlmap-secret")
    assert f'wlmap send samples/events/call-ended.json --url {url}/webhooks --secret "$(cat .wlmap-secret)"' in first

    with listener(tmp_path) as (url, log):
        assert post(url, secret) == 200  # the same secret on the next start
        again = log.read_text()
    assert secret not in again
    assert again.startswith("webhook secret: the one in .wlmap-secret (WLMAP_WEBHOOK_SECRETS overrides it)")

    with listener(tmp_path, env=fresh_env(WLMAP_WEBHOOK_SECRETS="set-by-the-operator")) as (url, log):
        assert post(url, "set-by-the-operator") == 200
        assert post(url, secret) == 401
    assert ".wlmap-secret" not in log.read_text()


def test_unset_variables_are_one_short_block_naming_the_mappings_that_will_fail(tmp_path: Path) -> None:
    with listener(tmp_path) as (_, log):
        text = log.read_text()
    start = text.splitlines()
    assert not any("is not set" in line for line in start)
    names = sorted(
        line.split(":", 1)[1].strip()
        for file in (ROOT / "mappings").glob("*.yaml")
        if not file.name.endswith(".tests.yaml")
        for line in file.read_text().splitlines()
        if line.startswith("name:")
    )
    assert {*SHIPPED, "sap-maintenance-notification", "servicenow-incident-call"} <= set(names)
    block = text.split(
        f"WARNING wlmap.service: environment variables not set; these {len(names)} mappings will fail until they are:\n"
    )
    assert len(block) == 2, text
    rows = {row.split()[0]: row.split(None, 1)[1] for row in block[1].splitlines()[: len(names)]}
    assert list(rows) == names  # every shipped mapping needs a connection variable, in name order
    assert (
        rows["salesforce-work-order"]
        == "SCOPE_API_TOKEN, SCOPE_GRAPHQL_URL, SF_CLIENT_ID, SF_CLIENT_SECRET, SF_DOMAIN_URL"
    )
    before_listening = text.split("listening on", 1)[0].splitlines()
    assert len(before_listening) <= 15, text


def test_production_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mapper.cli", "run", "--serve", str(ROOT / "mappings"), "--port", "0"]
    for args, env in (
        (["--require-secret"], fresh_env()),
        ([], fresh_env(WLMAP_REQUIRE_SECRET="1")),
    ):
        done = subprocess.run([*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "wlmap: no webhook secret: set WLMAP_WEBHOOK_SECRETS" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / ".wlmap-secret").exists()


def test_a_secret_file_others_may_read_is_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / ".wlmap-secret"
    secret_file.write_text("a-secret-the-group-can-read\n")
    secret_file.chmod(0o640)
    command = [sys.executable, "-m", "mapper.cli", "run", "--serve", str(ROOT / "mappings"), "--port", "0"]
    done = subprocess.run(command, cwd=tmp_path, env=fresh_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        "wlmap: .wlmap-secret may be read by others (mode 0640): `chmod 600 .wlmap-secret`, "
        "or delete it to have a new secret made\n"
    )
