"""The console in a real browser: headless Chromium (Debian's, /usr/bin/chromium) driven by Playwright, against
`wlmap run --serve` in a subprocess with the real runner and a fake target on 127.0.0.1.

Without the browser these tests skip, saying how to install it; under CI (CI set) they fail instead, like the
PostgreSQL tests. Screenshots of every page go to $WLMAP_SCREENSHOTS when set (a folder outside git), else to
the test's temporary folder.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import FakeServer, Recorded, Reply
from test_service_support import Service, Target, body_for

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USER, PASSWORD = "alice", "correct horse battery staple"
TARGET_TOKEN = "target-secret-token-4242"  # the service's; never in the operator's shell, never on a page

MAPPING = """\
version: 1
name: effect
trigger:
  topics: [scenario_session/completed]
connections:
  target:
    base_url: "{{ env.WLMAP_TEST_TARGET }}"
    auth:
      bearer:
        token: "{{ env.TARGET_TOKEN }}"
    retry:
      schedule: [0, 1h]
      jitter: 0
steps:
  - name: post
    connection: target
    method: POST
    path: /effect
    json:
      id: "{{ event.resource_id }}"
"""


class Answers:
    """What the fake target answers next, by resource id (default for the others)."""

    def __init__(self) -> None:
        self.default: tuple[int, str] = (200, '{"ok": true}')
        self.by_resource: dict[str, tuple[int, str]] = {}
        self.seen: list[Recorded] = []

    def __call__(self, request: Recorded) -> Reply:
        self.seen.append(request)
        status, body = self.by_resource.get(request.json().get("id"), self.default)
        return Reply(status, body.encode(), [("content-type", "application/json")])


class ConsoleService(Service):
    """The service with the real runner (timelines come from its traces) and the console's credential."""

    def __init__(self, tmp_path: Path, target_url: str, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        super().__init__(tmp_path, Target(url=target_url), env=env, args=args)
        (self.mappings / "effect.yaml").write_text(MAPPING)

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("--runner")
        return command[:at] + command[at + 2 :]


def browser_or_skip() -> Any:
    """Playwright's sync API, once the browser is known to be there (skip, or fail under CI, when not)."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing: apt-get install -y chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is missing: pip install -e '.[test]'"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests cannot run under CI: {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("WLMAP_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def answers() -> Iterator[tuple[Answers, str]]:
    replies = Answers()
    with FakeServer() as server:
        server.route("POST", "/effect", replies)
        yield replies, server.url


@pytest.fixture
def service(tmp_path: Path, answers: tuple[Answers, str]) -> Iterator[ConsoleService]:
    env = {"TARGET_TOKEN": TARGET_TOKEN, "WLMAP_UI_USER": USER, "WLMAP_UI_PASSWORD": PASSWORD}
    running = ConsoleService(tmp_path, answers[1], env)
    try:
        yield running.start()
    finally:
        running.close()


@pytest.fixture
def page(service: ConsoleService) -> Iterator[Any]:
    sync_playwright = browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            yield context.new_page()
        finally:
            browser.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def job_status(service: ConsoleService, job: int) -> str:
    rows = service.query("SELECT status FROM jobs WHERE id = ?", (job,))
    return str(rows[0][0]) if rows else ""


def log_in(page: Any, service: ConsoleService, shots: Path | None = None) -> None:
    page.goto(f"{service.url}/ui/events")
    assert page.url.startswith(f"{service.url}/ui/login?next=")
    if shots is not None:
        page.screenshot(path=str(shots / "01-login.png"), full_page=True)
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{service.url}/ui/events")


def shoot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / name), full_page=True)
    assert TARGET_TOKEN not in page.content()  # nothing secret, on any page


def test_find_a_dead_event_read_its_timeline_and_replay_it(
    page: Any, service: ConsoleService, answers: tuple[Answers, str], shots: Path
) -> None:
    replies, _ = answers
    replies.default = (404, '{"error": "no such work order"}')
    replies.by_resource["R1"] = (404, '{"error": "no work order R1 in this plant"}')
    assert service.post(body_for("R1"), "dead-1").status_code == 200
    assert service.post(body_for("R-other"), "other-1").status_code == 200
    wait_for(lambda: job_status(service, 1) == "dead" and job_status(service, 2) == "dead", "two dead jobs")
    assert service.post(body_for("R9"), "ignored-1", topic="user/created").status_code == 200  # an ignored one
    log_in(page, service, shots)

    page.get_by_label("Status").select_option("dead")
    page.get_by_label("Text").fill("R1")
    page.get_by_role("button", name="Show").click()
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and "answered 404" in rows.first.inner_text()
    shoot(page, shots, "02-events-dead-found.png")
    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet, upright
    shoot(page, shots, "02b-events-tablet.png")
    page.set_viewport_size({"width": 1280, "height": 900})
    rows.first.get_by_role("link", name="1", exact=True).click()
    page.wait_for_url(f"{service.url}/ui/events/1")

    failed = page.locator(".timeline .entry.mark-failed").first
    assert "step `post`" in failed.inner_text()
    assert failed.locator(".http.bad").inner_text() == "404"
    assert "no work order R1 in this plant" in failed.inner_text()
    assert "authorization\n***" in failed.inner_text().lower()  # the service's token, masked
    assert "answered 404" in page.locator(".outcome .reason").inner_text()
    shoot(page, shots, "03-job-dead-timeline.png")
    page.set_viewport_size({"width": 768, "height": 1024})
    shoot(page, shots, "03b-job-tablet.png")
    page.set_viewport_size({"width": 1280, "height": 900})

    replies.default, replies.by_resource = (200, '{"ok": true}'), {}  # the target is fixed
    page.get_by_role("button", name="Replay").click()
    page.wait_for_url(f"{service.url}/ui/events/1")
    assert "Replay asked for" in page.locator(".notice").inner_text()
    page.get_by_role("link", name="job 3").wait_for(timeout=20_000)  # the page refreshes until it is made
    page.get_by_role("link", name="job 3").first.click()
    page.wait_for_url(f"{service.url}/ui/events/3")
    wait_for(lambda: job_status(service, 3) == "done", "the replay to run")
    page.reload()
    assert page.locator("h1 .status").inner_text() == "done"
    assert page.locator(".attempt .timeline .outcome").first.inner_text().lower().startswith("outcome done")
    assert "replay job 1" in page.locator("table").first.inner_text()  # the history says who asked
    assert USER in page.locator("table").first.inner_text()
    shoot(page, shots, "04-replay-done.png")

    page.goto(f"{service.url}/ui/events/d3")
    assert "Why no mapping took it" in page.content() and "user/created" in page.content()
    shoot(page, shots, "05-ignored-webhook.png")
    page.get_by_role("link", name="Mappings").click()
    assert "effect" in page.locator("h2").first.inner_text()
    shoot(page, shots, "06-mappings.png")
    page.get_by_label("Dry run a stored event (nothing is sent)").fill("1")
    page.get_by_role("button", name="Dry run").click()
    assert "Dry run of effect" in page.locator("h1").inner_text()
    assert page.locator(".timeline .outcome").inner_text().lower().startswith("outcome done")
    shoot(page, shots, "07-dry-run.png")
    page.get_by_role("link", name="Health").click()
    assert "The store answers and can write." in page.content()
    shoot(page, shots, "08-health.png")


def test_retry_now_on_a_job_waiting_to_retry(
    page: Any, service: ConsoleService, answers: tuple[Answers, str], shots: Path
) -> None:
    replies, _ = answers
    replies.default = (503, '{"error": "maintenance"}')
    assert service.post(body_for("R2"), "retry-1").status_code == 200
    wait_for(lambda: job_status(service, 1) == "retry", "a job waiting to retry")
    log_in(page, service)
    page.goto(f"{service.url}/ui/events/1")
    assert "next try at" in page.locator(".facts").first.inner_text() and "(attempt 2 of 2)" in page.content()
    shoot(page, shots, "09-job-retry.png")
    replies.default = (200, '{"ok": true}')
    page.get_by_role("button", name="Retry now").click()
    wait_for(lambda: job_status(service, 1) == "done", "the retry to run now, not in an hour")
    page.goto(f"{service.url}/ui/events/1")
    assert page.locator("h1 .status").inner_text() == "done"
    assert "retry now job 1" in page.locator("table").first.inner_text()


def test_a_bulk_replay_asks_first(
    page: Any, service: ConsoleService, answers: tuple[Answers, str], shots: Path
) -> None:
    replies, _ = answers
    replies.default = (404, '{"error": "no"}')
    for n in range(3):
        assert service.post(body_for(f"B{n}"), f"bulk-{n}").status_code == 200
    wait_for(lambda: all(job_status(service, n) == "dead" for n in (1, 2, 3)), "three dead jobs")
    replies.default = (200, '{"ok": true}')
    log_in(page, service)
    page.goto(f"{service.url}/ui/events?status=dead")
    page.get_by_role("button", name="Replay every dead job…").click()
    assert page.locator("h1").inner_text() == "Replay 3 event(s)?"
    assert service.query("SELECT COUNT(*) FROM actions")[0][0] == 0  # nothing asked before the confirmation
    shoot(page, shots, "10-bulk-confirm.png")
    page.get_by_role("button", name="Yes, replay 3 event(s)").click()
    page.wait_for_url(f"{service.url}/ui/events")
    assert "Asked the service to replay 3 event(s)." in page.locator(".notice").inner_text()
    wait_for(lambda: all(job_status(service, n) == "done" for n in (4, 5, 6)), "three replays done")
    assert [job_status(service, n) for n in (1, 2, 3)] == ["replayed"] * 3
    page.goto(f"{service.url}/ui/events")
    shoot(page, shots, "11-events-after-bulk.png")


def test_a_post_without_the_csrf_token_is_refused(page: Any, service: ConsoleService, shots: Path) -> None:
    service.post(body_for("R5"), "c-1", topic="user/created")  # an ignored webhook: replayable
    log_in(page, service)
    refused = page.request.post(f"{service.url}/ui/events/d1/replay", form={"nothing": "here"})
    assert refused.status == 403 and "nothing was done" in refused.text()
    wrong = page.request.post(f"{service.url}/ui/events/d1/replay", form={"csrf": "guessed"})
    assert wrong.status == 403
    assert service.query("SELECT COUNT(*) FROM actions")[0][0] == 0
    page.set_content(refused.text())
    shoot(page, shots, "12-csrf-refused.png")
    logged_out = httpx.post(f"{service.url}/ui/events/d1/replay", data={"csrf": "x"}, follow_redirects=False)
    assert logged_out.status_code == 303 and logged_out.headers["location"].startswith("/ui/login")


def test_no_credential_no_console(tmp_path: Path, answers: tuple[Answers, str]) -> None:
    service = ConsoleService(tmp_path, answers[1], {"TARGET_TOKEN": TARGET_TOKEN})
    try:
        service.start()
        for path in ("/ui", "/ui/", "/ui/login", "/ui/events", "/ui/static/console.css"):
            assert httpx.get(f"{service.url}{path}", follow_redirects=False).status_code == 404, path
    finally:
        service.close()
    with sqlite3.connect(tmp_path / "wlmap.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 0


def test_no_redirect_is_built_from_the_host_header(service: ConsoleService) -> None:
    """Starlette's trailing-slash redirect takes its Location from the Host header; the console's routes have none,
    and its own redirects are paths of the console."""
    evil = {"Host": "evil.example"}
    for path in ("/ui/events/", "/ui/mappings/", "/ui/login/"):
        answer = httpx.get(f"{service.url}{path}", headers=evil, follow_redirects=False)
        assert answer.status_code == 404 and "location" not in answer.headers, path
    for path in ("/ui", "/ui/", "/ui/events"):
        answer = httpx.get(f"{service.url}{path}", headers=evil, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/"), path
    login = httpx.get(f"{service.url}/ui/login", params={"next": "//evil.example/x"})
    assert 'name="next" value="//evil.example/x"' in login.text  # kept as given, but never followed:
    token = login.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    answer = httpx.post(
        f"{service.url}/ui/login",
        data={"login_token": token, "user": USER, "password": PASSWORD, "next": "//evil.example/x"},
        cookies=login.cookies,
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/events"
    assert (
        "httponly" in answer.headers["set-cookie"].lower() and "samesite=strict" in answer.headers["set-cookie"].lower()
    )
    page = httpx.get(f"{service.url}/ui/events", cookies=answer.cookies)
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
