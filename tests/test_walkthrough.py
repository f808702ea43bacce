"""The README's walkthrough, run as written: its code block is the script, in a fresh folder holding what a
checkout holds (mappings/, samples/, schemas/ and .venv, the environment these tests run in); then what it printed
is checked: the dry run, the cases, the demo's done rows and the parked job with its reason."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## A two-minute walkthrough\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for folder in ("mappings", "samples", "schemas"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.fail(f"the tests must run in a virtual environment (make test makes .venv); {venv} is not one")
    (tmp_path / ".venv").symlink_to(venv)
    return tmp_path


def test_the_walkthrough_runs_as_written(checkout: Path) -> None:
    script = walkthrough()
    assert script.startswith("source .venv/bin/activate")
    assert "wlmap demo" in script and "wlmap events show" in script
    # A machine with the connection variables or a store of its own set must not change what the steps do.
    env = {k: v for k, v in os.environ.items() if not re.match(r"(WLMAP_|SCOPE_|SNOW_|SAP_|MAXIMO_|SF_|ASSETS_)", k)}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-x", "-c", script],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the trace of each command (-x) before what it printed
        text=True,
        timeout=300,
    )
    output = done.stdout
    assert done.returncode == 0, output
    # 2. the dry run: the normalised event, both steps, secrets masked, nothing sent
    assert "dry run  nothing is sent" in output
    assert "  fields generation = legacy, name = updated" in output
    assert "→ PATCH ‹SNOW_BASE_URL›/api/now/table/incident/d71f7935c0a8016700802b64c67c11c6" in output
    # 3. every shipped case passes
    assert re.search(r"^\d{2,} passed, 0 failed$", output, re.MULTILINE), output
    # 4. the demo: each target done once, and the parked job with its reason
    table = output.split("$ wlmap events list --store demo.db\n", 1)[1]
    for mapping in ("servicenow-incident-call", "sap-maintenance-notification", "salesforce-work-order"):
        assert re.search(rf"^\d+ +\S+ +{mapping} +done ", table, re.MULTILINE), (mapping, table)
    hint = re.search(r"Every attempt, secrets masked: wlmap events show (\d+) --store demo.db", output)
    assert hint is not None, output
    parked = hint.group(1)  # the demo names the parked job; the walkthrough's step 5 must show that one
    assert re.search(rf"^{parked} +\S+ +maximo-workorder-worklog +dead +1 ", table, re.MULTILINE), table
    # 5. what the store kept of the parked job: Maximo's answer, and its API key masked
    assert f"+ wlmap events show {parked} --store demo.db" in output, f"README step 5 should show job {parked}"
    shown = output.split(f"+ wlmap events show {parked} --store demo.db", 1)[1]
    assert f"job {parked} · mapping maximo-workorder-worklog (mappings/maximo.yaml) · dead" in shown
    assert "maximo answered 401" in shown and re.search(r'"?apikey"?: "?\*\*\*', shown)
    assert "a-wrong-api-key" not in output
    # and every credential the demo's requests carried is masked in everything the store kept
    with contextlib.closing(sqlite3.connect(checkout / "demo.db")) as store:
        kept = "\n".join(store.iterdump())
    sent = re.findall(r'\\?"(authorization|apikey|x-csrf-token|cookie|set-cookie)\\?": \\?"([^"\\]*)', kept)
    assert {name for name, _ in sent} >= {"authorization", "apikey", "x-csrf-token", "cookie"}
    assert {value for _, value in sent} == {"***", "Fetch"}  # `x-csrf-token: Fetch` asks SAP for a token
    assert not re.search(r"(Basic |Bearer |Token token=)[^*]", kept)
