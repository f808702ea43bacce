"""The console's events page on a store of a million jobs, next to the same page on a store of ten thousand.

Builds two SQLite stores (1,000,000 and 10,000 jobs, each with its webhook; 97 % done, 2 % dead, the rest
waiting; four mappings; 50,000 resources), serves the console of each on 127.0.0.1 and times GET /ui/events for
each filter, through real HTTP, logged in: the newest page, a page deep down (by its cursor), and the filters by
status, mapping, resource, time and text. Prints the median of 15 requests per page (wall clock; the machine's
other load shows there), the million-row store's next to the small one's, and the ratio. Keyset pages should
make the ratio about 1: a page reads its 50 rows through an index whatever the store's size.

    python bench/events_page.py [--jobs 1000000] [--keep DIR]

Building the big store takes about a minute and ~0.5 GB of disk (removed afterwards unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mapper.service.console.app import Parts, routes  # noqa: E402
from mapper.service.console.auth import Credentials  # noqa: E402
from mapper.service.mappings import Mappings  # noqa: E402
from mapper.service.store.sqlite import SqliteStore  # noqa: E402

START = 1_700_000_000.0
MAPPINGS = ("sap-notification", "servicenow-incident", "maximo-workorder", "salesforce-case")
REASONS = {
    "done": "every step succeeded",
    "dead": "step `update` (sap.yaml:58): sap answered 404: no such notification",
    "retry": "step `update` (sap.yaml:58): sap answered 503",
    "pending": None,
}


def build(path: Path, jobs: int) -> None:
    """A store with `jobs` jobs, one webhook each, one job a second apart."""
    SqliteStore(path).close()  # the layout, by the store's own migrations
    rng = random.Random(7)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    headers = json.dumps([["content-type", "application/json"], ["x-scope-topic", "scenario_session/completed"]])
    chunk = 20_000
    for start in range(1, jobs + 1, chunk):
        deliveries, rows = [], []
        for n in range(start, min(start + chunk, jobs + 1)):
            at = START + n
            resource = f"U2NlbmFyaW9TZXNzaW9u{rng.randrange(50_000):06d}"
            roll = rng.random()
            status = "done" if roll < 0.97 else "dead" if roll < 0.99 else "retry" if roll < 0.995 else "pending"
            body = json.dumps({"data": {"id": resource, "type": "ScenarioSession"}, "n": n}).encode()
            deliveries.append(
                (
                    n,
                    at,
                    f"delivery-{n:08d}",
                    f"id:delivery-{n:08d}",
                    "sha",
                    "verified",
                    f"scenario_session/completed ScenarioSession {resource}",
                    headers,
                    body,
                    "accepted",
                    None,
                    None,
                )
            )
            rows.append(
                (
                    n,
                    n,
                    MAPPINGS[n % len(MAPPINGS)],
                    f"/srv/wlmap/mappings/{MAPPINGS[n % len(MAPPINGS)]}.yaml",
                    resource,
                    status,
                    1,
                    at + 300,
                    None,
                    1,
                    REASONS[status],
                    None,
                    None,
                    at,
                    at + 1,
                    0,
                    None,
                    8 if status == "retry" else None,
                )
            )
        conn.executemany(
            "INSERT INTO deliveries (id, received_at, delivery_id, dedupe_key, body_sha256, signature, "
            "summary, headers, body, status, duplicate_of, notes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            deliveries,
        )
        conn.executemany(
            "INSERT INTO jobs (id, delivery, mapping, mapping_file, resource_key, status, attempts, "
            "next_attempt_at, lease_until, token, last_reason, replay_of, superseded_by, created_at, "
            "updated_at, cuts, holder, max_attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    conn.execute("COMMIT")
    conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def console(path: Path) -> Iterator[httpx.Client]:
    """The console of the store at `path` on 127.0.0.1, and a client logged in to it."""
    store = SqliteStore(path)
    parts = Parts(store, Mappings([], {}), Credentials("bench", "bench-password"), where=str(path))
    app = Starlette(routes=routes(parts))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            login = client.get("/ui/login")
            token = login.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
            answer = client.post(
                "/ui/login",
                data={"login_token": token, "user": "bench", "password": "bench-password", "next": "/ui/events"},
            )
            assert answer.status_code in (200, 303), answer.status_code
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def pages(jobs: int) -> dict[str, str]:
    middle = jobs // 2
    return {
        "newest": "/ui/events",
        "deep (by cursor)": f"/ui/events?older=j{middle}.d{middle}",
        "status dead": "/ui/events?status=dead",
        "status retry": "/ui/events?status=retry",
        "mapping": "/ui/events?mapping=maximo-workorder",
        "resource": "/ui/events?resource=U2NlbmFyaW9TZXNzaW9u000123",
        "time (an hour, half-way)": "/ui/events?since={}&until={}".format(
            time.strftime("%Y-%m-%dT%H:%M", time.gmtime(START + middle)),
            time.strftime("%Y-%m-%dT%H:%M", time.gmtime(START + middle + 3600)),
        ),
        "text": "/ui/events?text=no+such+notification",
        "status dead + text": "/ui/events?status=dead&text=sap+answered+404",
        "text, found nowhere": "/ui/events?text=nowhere+to+be+found",
    }


def timed(client: httpx.Client, url: str, runs: int = 15) -> float:
    shown = client.get(url).text.count('<td class="nowrap">')  # warm: the page cache, the template
    assert shown or "nowhere" in url or "resource" in url, f"{url}: no rows"
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(url)
        took.append(time.perf_counter() - started)
        assert answer.status_code == 200, (url, answer.status_code)
    return statistics.median(took) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the stores in this folder and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="wlmap-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        small, big = folder / "small.db", folder / f"big-{args.jobs}.db"
        if not small.exists():
            build(small, 10_000)
        if not big.exists():
            started = time.perf_counter()
            build(big, args.jobs)
            print(
                f"built {args.jobs:,} jobs in {time.perf_counter() - started:.0f} s ({big.stat().st_size / 1e6:.0f} MB)"
            )
        results = {}
        for label, path, jobs in (("10k", small, 10_000), ("big", big, args.jobs)):
            with console(path) as client:
                results[label] = {name: timed(client, url) for name, url in pages(jobs).items()}
        print(f"{'events page':<26}{'10,000 jobs':>14}{f'{args.jobs:,} jobs':>18}{'ratio':>8}")
        for name in results["10k"]:
            a, b = results["10k"][name], results["big"][name]
            print(f"{name:<26}{a:>11.1f} ms{b:>15.1f} ms{b / a:>8.2f}")
        worst = max(results["big"].values())
        print(f"slowest page at {args.jobs:,} jobs: {worst:.1f} ms (goal: under 300 ms)")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
