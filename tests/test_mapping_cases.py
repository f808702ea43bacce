"""The shipped mappings' test cases (mappings/*.tests.yaml): they pass, and every request they send conforms.

1. `wlmap test mappings/` (the CLI, as CI and a mapping author run it) exits 0 with every case `ok`.
2. Runtime conformance proof: every case of every shipped mapping is run again in-process, the way
   `wlmap test` runs it (`mapper.rehearse.cases.rehearse_case`), on a stub transport that keeps every
   request. Each request sent to the target system (the Scope GraphQL query excepted) goes through the vendor
   checker of tests/test_vendor_conformance.py (`wire_request` + `check_request`) and must show no violation.
   For SAP, every modifying request must also carry the token and the session cookie the CSRF fetch just
   returned, and that fetch must go to the service root with the same sap-client.
3. The proof bites: mappings with one vendor rule broken on purpose make it report that rule.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from test_vendor_conformance import (
    MAPPINGS_DIR,
    MODIFYING,
    REPO,
    SAP_PREFIX,
    SHIPPED,
    SpecsMissing,
    check_request,
    vendor_of,
    wire_request,
)

from mapper.language.loader import load_file, load_text
from mapper.language.plan import Plan
from mapper.rehearse import tests_file as testing
from mapper.rehearse.cases import rehearse_case
from mapper.rehearse.stubs import DRY_RUN_TOKEN, StubTransport
from mapper.rehearse.tests_file import Case, load_cases
from mapper.run.clients.exchange import STEP_EXTENSION
from mapper.run.outcome import RunResult

# ------------------------------------------------------------------------------------------- running a case


@dataclass
class Wire:
    """One request that reached the transport: which step sent it, the request, the stub's answer."""

    step: str | None
    request: httpx.Request
    response: httpx.Response


class RecordingTransport(StubTransport):
    """The stub transport of `wlmap test`, keeping also the requests it answers itself (CSRF fetch, OAuth)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wire: list[Wire] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.wire.append(Wire(request.extensions.get(STEP_EXTENSION), request, response))
        return response


@dataclass
class Ran:
    matched: bool
    result: RunResult | None = None
    wire: list[Wire] = field(default_factory=list)


async def run_recorded(plan: Plan, case: Case) -> Ran:
    """The case run as `wlmap test` runs it, keeping every request that reached the transport."""
    transport = RecordingTransport(case.graphql, case.responses)
    ran = await rehearse_case(plan, case, transport)
    return Ran(ran.matched, ran.result, transport.wire)


def load_plan(name: str) -> Plan:
    plan, problems = load_file(MAPPINGS_DIR / name)
    assert plan is not None, "\n".join(str(p) for p in problems)
    return plan


def shipped_cases() -> list[Any]:
    params = []
    for name in sorted(SHIPPED):
        tests_file = testing.tests_file_for(MAPPINGS_DIR / name)
        if not tests_file.is_file():
            params.append(pytest.param(name, -1, id=f"{name}:no-tests-file"))
            continue
        cases, _ = load_cases(tests_file)
        params.extend(pytest.param(name, i, id=f"{name}:{i + 1:02d}") for i in range(len(cases)))
    return params


# ---------------------------------------------------------------------------------------- the conformance


def _label(wire: Wire) -> str:
    return f"step `{wire.step}` {wire.request.method} {wire.request.url}"


def _checked(wire: Wire) -> tuple[str, list[str]]:
    request = wire.request
    method, path, params, headers, body = wire_request(
        request.method, str(request.url), dict(request.headers), request.content
    )
    return path, check_request(method, path, params, headers, body)


def is_csrf_fetch(wire: Wire) -> bool:
    return wire.request.headers.get("x-csrf-token", "").lower() == "fetch"


def violations(name: str, ran: Ran) -> list[str]:
    """Every vendor-rule problem of the requests a run sent; empty when they all conform."""
    vendor = SHIPPED[name]
    found: list[str] = []
    fetched: Wire | None = None
    for wire in ran.wire:
        if wire.step == "query":  # Scope AR GraphQL, not the target system
            continue
        if b"grant_type=" in wire.request.content:  # an OAuth2 token request (the identity provider)
            if vendor == "salesforce":
                found.extend(f"{_label(wire)}: {p}" for p in salesforce_token_problems(wire))
            continue
        path, problems = _checked(wire)
        if vendor_of(path) != vendor:
            problems = [f"{path}: not a {vendor} path", *problems]
        found.extend(f"{_label(wire)}: {p}" for p in problems)
        if vendor != "sap":
            continue
        if is_csrf_fetch(wire):
            fetched = wire
            found.extend(f"{_label(wire)}: {p}" for p in sap_fetch_problems(wire))
        elif wire.request.method in MODIFYING:
            found.extend(f"{_label(wire)}: {p}" for p in sap_session_problems(wire, fetched))
    return found


def salesforce_token_problems(token: Wire) -> list[str]:
    """Salesforce Help, client credentials flow: POST <My Domain>/services/oauth2/token, a form with
    grant_type=client_credentials, client_id and client_secret."""
    problems = []
    form = dict(parse_qsl(token.request.content.decode()))
    if token.request.method != "POST" or not token.request.url.path.endswith("/services/oauth2/token"):
        problems.append(f"the token request is {token.request.method} {token.request.url.path}")
    if form.get("grant_type") != "client_credentials" or not {"client_id", "client_secret"} <= set(form):
        problems.append(f"the token request form is {sorted(form)} (grant_type={form.get('grant_type')})")
    return problems


def sap_fetch_problems(fetch: Wire) -> list[str]:
    """README §2.4: GET/HEAD of the service root with `x-csrf-token: Fetch`."""
    problems = []
    path = fetch.request.url.path
    root = path[len(SAP_PREFIX) :].split("/")[0]
    if fetch.request.method not in {"GET", "HEAD"}:
        problems.append("the CSRF token fetch must be GET or HEAD")
    if not path.startswith(SAP_PREFIX) or path.rstrip("/") != SAP_PREFIX + root:
        problems.append(f"the CSRF token fetch goes to {path}, not to a service root")
    return problems


def sap_session_problems(write: Wire, fetched: Wire | None) -> list[str]:
    """A modifying SAP request carries the token and cookies of the fetch before it, for the same client."""
    if fetched is None:
        return ["no CSRF token fetch (x-csrf-token: Fetch) was sent before this modifying request"]
    problems = []
    token = fetched.response.headers.get("x-csrf-token")
    if token != DRY_RUN_TOKEN:
        problems.append(f"the stub's token fetch answered {token!r}, expected {DRY_RUN_TOKEN!r}")
    if write.request.headers.get("x-csrf-token") != token:
        sent = write.request.headers.get("x-csrf-token")
        problems.append(f"x-csrf-token {sent!r} is not the fetched {token!r}")
    cookies = {c.split("=", 1)[0].strip(): c for c in write.request.headers.get("cookie", "").split(";") if c}
    for set_cookie in fetched.response.headers.get_list("set-cookie"):
        name_value = set_cookie.split(";", 1)[0].strip()
        if cookies.get(name_value.split("=", 1)[0], "").strip() != name_value:
            problems.append(f"the session cookie {name_value} set by the token fetch was not sent")
    fetch_root = fetched.request.url.path.rstrip("/")
    if not write.request.url.path.startswith(fetch_root + "/"):
        problems.append(f"the token was fetched from {fetch_root}, another service")
    client = (fetched.request.url.params.get("sap-client"), write.request.url.params.get("sap-client"))
    if client[0] != client[1]:
        problems.append(f"the token was fetched for sap-client {client[0]}, the request is for {client[1]}")
    return problems


def _or_skip(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except SpecsMissing as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize(("name", "index"), shipped_cases())
def test_every_request_of_every_case_conforms(name: str, index: int) -> None:
    tests_file = testing.tests_file_for(MAPPINGS_DIR / name)
    assert index >= 0, f"{tests_file} is missing: every shipped mapping needs its test cases"
    case = load_cases(tests_file)[0][index]
    ran = asyncio.run(run_recorded(load_plan(name), case))
    if not ran.matched:
        assert case.expect.get("matched", True) is False, f"{case.name}: the trigger did not match"
        return
    sent = [w for w in ran.wire if w.step != "query"]
    assert ran.result is not None
    if not sent:
        assert ran.result.status in ("skipped", "dead"), f"{case.name}: nothing sent, but {ran.result.status}"
    found = _or_skip(lambda: violations(name, ran))
    assert found == [], f"{name} / {case.name}:\n" + "\n".join(found)


def test_the_cases_send_every_step_of_every_mapping() -> None:
    """The proof above is only as wide as the requests the cases send: every step is sent at least once."""
    missing = []
    for name in sorted(SHIPPED):
        plan = load_plan(name)
        cases, _ = load_cases(testing.tests_file_for(MAPPINGS_DIR / name))
        steps = {w.step for case in cases for w in asyncio.run(run_recorded(plan, case)).wire}
        missing.extend(f"{name}: {step.name}" for step in plan.steps if step.name not in steps)
    assert missing == [], f"steps no case sends: {missing}"


def test_sap_writes_follow_a_csrf_fetch() -> None:
    """The happy path really goes through the CSRF handshake (so the session checks above are not vacuous)."""
    cases, _ = load_cases(testing.tests_file_for(MAPPINGS_DIR / "sap.yaml"))
    ran = asyncio.run(run_recorded(load_plan("sap.yaml"), cases[0]))
    kinds = [("fetch" if is_csrf_fetch(w) else w.request.method, w.step) for w in ran.wire if w.step != "query"]
    assert kinds[0] == ("GET", "read-notification")
    assert ("fetch", "update-notification") in kinds
    assert kinds.index(("fetch", "update-notification")) < kinds.index(("PATCH", "update-notification"))
    assert ("POST", "complete-notification") in kinds


def test_maximo_retries_send_the_same_transactionid() -> None:
    """maximo.yaml relies on Maximo's 409 for a repeated transactionid: a retry must send the same one."""
    cases, _ = load_cases(testing.tests_file_for(MAPPINGS_DIR / "maximo.yaml"))
    plan = load_plan("maximo.yaml")
    ids = []
    for _ in range(2):
        ran = asyncio.run(run_recorded(plan, cases[0]))
        ids.append([w.request.headers.get("transactionid") for w in ran.wire if w.step == "add-worklog"])
    assert ids[0] == ids[1] and len(ids[0]) == 1 and ids[0][0], ids


# --------------------------------------------------------------------------------------- the proof bites

# (mapping, text to replace, replacement, expected problem fragment[, case name]): one vendor rule broken on
# purpose; the case run is the first of the mapping's tests file unless named.
BROKEN: list[tuple[str, ...]] = [
    ("sap.yaml", "      If-Match: \"{{ steps.read_notification.etag or '*' }}\"\n", "", "If-Match is required"),
    (
        "sap.yaml",
        "    csrf:\n      # README §2.4: token fetch from the service root; on-premises S/4HANA "
        "needed the trailing slash.\n      fetch_path: /sap/opu/odata/sap/API_MAINTNOTIFICATION/\n",
        "",
        "x-csrf-token",
    ),
    (
        "sap.yaml",
        "      MalfunctionEndTime:",
        "      MaintNotificationLongText: x\n      MalfunctionEndTime:",
        "not updatable",
    ),
    ("sap.yaml", "({{ notification | odata_quote }})", "({{ notification }})", "single-quoted"),
    ("maximo.yaml", "      patchtype: MERGE\n", "", "patchtype: MERGE"),
    ("maximo.yaml", "      x-method-override: PATCH\n", "", "x-method-override: PATCH"),
    ("maximo.yaml", "    params:\n      lean: 1", "    params:\n      lean: 0", "lean=1"),
    (
        "maximo.yaml",
        "truncate_text(100)",
        "truncate_text(200)",
        "maximum 100",
        "a long scenario name is cut so the work log description stays within 100 characters",
    ),
    (
        "servicenow.yaml",
        "      sysparm_fields: sys_id,number\n",
        "      sysparm_limit: 1\n",
        "not a parameter of this method",
    ),
    ("servicenow.yaml", "    json:\n", "    json:\n      sys_updated_on: x\n", "sys_ fields"),
    ("salesforce.yaml", "      Type: TextPost\n", "      Type: Post\n", "FeedItem.Type"),
    ("salesforce.yaml", '      ParentId: "{{ steps.find_work_order.id }}"\n', "", "ParentId"),
    (
        "salesforce.yaml",
        '      WorkLink_Session_Id__c: "{{ session_id }}"\n',
        '      Id: "{{ steps.find_work_order.id }}"\n',
        "not specified in the sobject data",
    ),
    ("salesforce.yaml", "        client_auth: body", "        client_auth: basic", "the token request form"),
]


@pytest.mark.parametrize("broken", BROKEN, ids=[f"{b[0]}-{b[3]}" for b in BROKEN])
def test_the_runtime_check_finds_a_broken_rule(broken: tuple[str, ...]) -> None:
    name, old, new, expected, *case_name = broken
    text = (MAPPINGS_DIR / name).read_text(encoding="utf-8")
    assert old in text, f"{name} changed: update this mutation ({old!r})"
    plan, problems = load_text(text.replace(old, new), f"broken-{name}")
    assert plan is not None, "\n".join(str(p) for p in problems)
    cases, _ = load_cases(testing.tests_file_for(MAPPINGS_DIR / name))
    case = next(c for c in cases if c.name == case_name[0]) if case_name else cases[0]
    ran = asyncio.run(run_recorded(plan, case))
    found = _or_skip(lambda: violations(name, ran))
    assert any(expected in p for p in found), f"expected a problem with {expected!r}, got {found}"


# ------------------------------------------------------------------------------------ the CLI, as CI runs it

_CASE_LINE = re.compile(r"^  (ok  |FAIL) (.*)$")
_HEADER = re.compile(r"^(\S+\.ya?ml) \((\S+\.tests\.yaml)\)$")


def _wlmap() -> str:
    beside = Path(sys.executable).with_name("wlmap")
    found = str(beside) if beside.exists() else shutil.which("wlmap")
    assert found, "the wlmap command is not installed (pip install -e .)"
    return found


@pytest.fixture(scope="module")
def wlmap_test_output() -> tuple[int, str]:
    done = subprocess.run(
        [_wlmap(), "test", "mappings/"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _sections(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        header = _HEADER.match(line)
        if header:
            current = sections.setdefault(Path(header.group(1)).name, [])
        elif line.startswith("  "):
            current.append(line)
    return sections


def test_wlmap_test_passes_every_case(wlmap_test_output: tuple[int, str]) -> None:
    code, output = wlmap_test_output
    assert code == 0, output
    sections = _sections(output)
    for name in sorted(SHIPPED):
        assert name in sections, f"{name}: no test cases ran\n{output}"
        lines = [m for m in map(_CASE_LINE.match, sections[name]) if m]
        cases, _ = load_cases(testing.tests_file_for(MAPPINGS_DIR / name))
        assert [m.group(2) for m in lines] == [c.name for c in cases], output
        assert all(m.group(1) == "ok  " for m in lines), output


@pytest.mark.parametrize("name", ["sap.yaml", "maximo.yaml", "salesforce.yaml"])
def test_wlmap_test_leaves_nothing_uncovered(wlmap_test_output: tuple[int, str], name: str) -> None:
    gaps = [line.strip() for line in _sections(wlmap_test_output[1]).get(name, []) if "not covered" in line]
    assert gaps == [], f"{name}: add cases for\n" + "\n".join(gaps)
