"""Not tests: the stand-in runner the service subprocess loads, and the harness the service tests drive.

The runner (`--runner test_service_support:EffectRunner`) makes one POST per run to
$WLMAP_TEST_TARGET/effect carrying the idempotency key (header and body), the delivery id and the resource
id, and turns the answer into a RunResult the way the real runner would: 2xx done; 408/429/5xx and timeouts
retry (honouring Retry-After); any other status dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from mapper.events import Event
from mapper.language.plan import Plan
from mapper.run.outcome import RunResult
from mapper.service.mappings import Mappings
from mapper.service.replays import Replays
from mapper.service.signature import sign
from mapper.service.store import Store
from mapper.service.worker import Worker, WorkerOptions

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class EffectRunner:
    """Runner(env) with `run(plan, event, *, idempotency_key, attempt)` and `aclose()`, like mapper.run.runner."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.url = env["WLMAP_TEST_TARGET"].rstrip("/") + "/effect"
        self.client = httpx.AsyncClient(timeout=float(env.get("WLMAP_TEST_TIMEOUT", "2")))

    async def run(self, plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        body = {
            "key": idempotency_key,
            "delivery_id": event.delivery_id,
            "resource_id": event.resource_id,
            "mapping": plan.name,
            "attempt": attempt,
            "payload": event.payload,
        }
        trace: dict[str, Any] = {"request": {"method": "POST", "url": "<target>/effect", "json": body}}
        try:
            response = await self.client.post(
                self.url,
                content=json.dumps(body).encode(),  # ASCII: any payload
                headers={"Idempotency-Key": idempotency_key, "Content-Type": "application/json"},
            )
        except httpx.TimeoutException:
            return RunResult(
                plan.name,
                "retry",
                "step `post`: the target did not answer in time",
                "post",
                trace_json=json.dumps(trace),
            )
        except httpx.HTTPError as exc:
            return RunResult(
                plan.name, "retry", f"step `post`: {type(exc).__name__}", "post", trace_json=json.dumps(trace)
            )
        trace["response"] = {"status": response.status_code}
        if response.status_code < 300:
            return RunResult(plan.name, "done", "every step succeeded", trace_json=json.dumps(trace))
        if response.status_code in RETRY_STATUSES:
            after = response.headers.get("retry-after")
            return RunResult(
                plan.name,
                "retry",
                f"step `post`: the target answered {response.status_code}",
                "post",
                retry_after=float(after) if after else None,
                trace_json=json.dumps(trace),
            )
        return RunResult(
            plan.name,
            "dead",
            f"step `post`: the target answered {response.status_code}",
            "post",
            trace_json=json.dumps(trace),
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class PoisonRunner(EffectRunner):
    """EffectRunner, except that a webhook whose body says `"poison": true` kills the whole process (SIGKILL),
    as a run that exhausts memory or crashes the interpreter would."""

    async def run(self, plan: Plan, event: Event, *, idempotency_key: str, attempt: int) -> RunResult:
        if isinstance(event.payload, dict) and event.payload.get("poison"):
            os.kill(os.getpid(), signal.SIGKILL)
        return await super().run(plan, event, idempotency_key=idempotency_key, attempt=attempt)


# ------------------------------------------------------------------------------------------------------------
# The harness: a fake target system, and the service as a real subprocess.

ROOT = Path(__file__).resolve().parent.parent
SECRET = "e2e-secret"
TOPIC = "scenario_session/completed"

MAPPING = """\
version: 1
name: effect
trigger:
  topics: [scenario_session/completed]
connections:
  target:
    base_url: "{{{{ env.WLMAP_TEST_TARGET }}}}"
    retry:
      schedule: {schedule}
      jitter: 0
steps:
  - name: post
    connection: target
    method: POST
    path: /effect
    json:
      id: "{{{{ event.resource_id }}}}"
"""


@dataclass
class Hit:
    """One request the target received."""

    key: str
    delivery_id: str
    resource_id: str
    attempt: int
    n: int | None
    started: float
    finished: float = 0.0
    status: int = 0


@dataclass
class Target:
    """The target system: records every request; an effect happens once per idempotency key (2xx only).

    `behave(hit) -> (status, delay, headers)` decides each answer; by default 200 at once.
    """

    behave: Callable[[Hit], tuple[int, float, list[tuple[str, str]]]] = lambda hit: (200, 0.0, [])
    hits: list[Hit] = field(default_factory=list)
    effects: dict[str, Hit] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    @contextlib.contextmanager
    def running(self) -> Iterator[Target]:
        from fakes import FakeServer, Recorded, Reply

        async def handle(request: Recorded) -> Reply:
            import asyncio

            body = request.json()
            payload = body.get("payload") or {}
            hit = Hit(
                body["key"],
                body["delivery_id"] or "",
                body["resource_id"] or "",
                body["attempt"],
                payload.get("n") if isinstance(payload, dict) else None,
                time.monotonic(),
            )
            assert request.header("idempotency-key") == hit.key
            with self.lock:
                self.hits.append(hit)
            status, delay, headers = self.behave(hit)
            if delay:
                await asyncio.sleep(delay)
            hit.finished, hit.status = time.monotonic(), status
            if status < 300:
                with self.lock:
                    self.effects.setdefault(hit.key, hit)  # a repeated key is answered, not applied again
            return Reply(status, b"{}", [("content-type", "application/json"), *headers])

        with FakeServer() as server:
            server.route("POST", "/effect", handle)
            self.url = server.url
            yield self

    def keys_by_delivery(self) -> dict[str, set[str]]:
        with self.lock:
            out: dict[str, set[str]] = {}
            for hit in self.hits:
                out.setdefault(hit.delivery_id, set()).add(hit.key)
            return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body_for(resource: str, n: int = 0) -> bytes:
    return json.dumps({"data": {"id": resource}, "n": n}).encode()


def signed_headers(body: bytes, delivery_id: str | None, topic: str = TOPIC) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "x-scope-topic": topic,
        "x-scope-topic-version": "1.1",
        "x-scope-hmac-sha256": sign(body, SECRET),
    }
    if delivery_id is not None:
        headers["x-scope-webhook-id"] = delivery_id
    return headers


class SenderThreads:
    """Threads that post webhooks until stopped (`with` starts and stops them); a subclass's `_send(k)` is the
    loop of thread k, which checks `stopping` and records under `lock`."""

    JOIN: float = 15.0  # seconds each thread gets to finish its post once stopped

    def __init__(self, threads: int) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._send, args=(k,), daemon=True) for k in range(threads)]

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(self.JOIN)

    def _send(self, k: int) -> None:
        raise NotImplementedError


class Service:
    """`wlmap run --serve` in a subprocess on a fixed port, with the EffectRunner."""

    def __init__(
        self,
        tmp_path: Path,
        target: Target,
        *,
        schedule: str = "[0, 1s, 2s, 4s, 8s]",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.dir = tmp_path
        self.mappings = tmp_path / "mappings"
        self.mappings.mkdir(exist_ok=True)
        (self.mappings / "effect.yaml").write_text(MAPPING.format(schedule=schedule))
        self.store = tmp_path / "wlmap.db"
        self.log = tmp_path / "service.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
            "WLMAP_WEBHOOK_SECRETS": f"old-secret,{SECRET}",
            "WLMAP_TEST_TARGET": target.url,
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mapper.cli",
            "run",
            "--serve",
            "--mappings",
            str(self.mappings),
            "--store",
            str(self.store),
            "--port",
            str(self.port),
            "--workers",
            "4",
            "--runner",
            "test_service_support:EffectRunner",
            "--lease",
            "2",
            "--poll",
            "0.05",
            "--grace",
            "2",
            *self.args,
        ]

    def start(self, wait: bool = True) -> Service:
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n----- start {self.starts} -----\n".encode())
            self.proc = subprocess.Popen(self.command(), env=self.env, stdout=log, stderr=log, cwd=self.dir)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the service exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the service did not start:\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no clean-up of any kind
        self.proc.wait()

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def post(self, body: bytes, delivery_id: str | None, topic: str = TOPIC, timeout: float = 10.0) -> Any:
        return httpx.post(
            f"{self.url}/webhooks", content=body, headers=signed_headers(body, delivery_id, topic), timeout=timeout
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.store, timeout=10)) as conn:
            return conn.execute(sql, params).fetchall()

    def active_jobs(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running', 'retry')")[0][0])

    def drain(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.active_jobs():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.active_jobs()} jobs still active:\n{self.tail()}")
            time.sleep(0.05)


class ServiceThread:
    """The service's side of replays in a thread of this process: the Replays desk and a worker pool running the
    stand-in runner against the target, on the store `open_store` opens, with the mappings of `folder`. The operator's
    side (the CLI, `operations.replay`) runs in the test itself, with no runner and no target."""

    def __init__(self, open_store: Callable[[], Store], folder: Path, env: dict[str, str]) -> None:
        self.open_store, self.folder, self.env = open_store, folder, env
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServiceThread:
        self.store = self.open_store()
        self.mappings = Mappings([self.folder], self.env)
        self.mappings.load()
        self.runner = EffectRunner(self.env)
        self.worker = Worker(
            self.store, self.mappings.current, self.runner.run, WorkerOptions(concurrency=2, poll=0.05)
        )
        self.replays = Replays(
            self.store,
            self.mappings.current,
            refused=lambda: self.mappings.refused,
            refresh=self.mappings.reload_if_changed,
            on_made=lambda: self.loop.call_soon_threadsafe(self.worker.wake),
            poll=0.05,
        )
        self.thread.start()
        self.tasks = [
            asyncio.run_coroutine_threadsafe(self.worker.serve(), self.loop),
            asyncio.run_coroutine_threadsafe(self.replays.serve(), self.loop),
        ]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.loop.call_soon_threadsafe(self.worker.stop)
        self.tasks[0].result(10)
        self.tasks[1].cancel()
        asyncio.run_coroutine_threadsafe(self.runner.aclose(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.store.close()
