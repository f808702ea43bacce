"""Not tests: collecting and scheduled mappings run by the real service (and the real runner) against a fake target.

The target records every POST to /batch/<group> (the bucket's run) and /scheduled (a schedule's run): an
effect happens once per idempotency key, like a target that honours Idempotency-Key; `behave` may make it
fail or slow down.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from test_service_support import Service, Target, body_for, signed_headers

COLLECT = """\
version: 1
name: {name}
trigger:
  topics: [scenario_session/completed]
connections:
  target:
    base_url: "{{{{ env.WLMAP_TEST_TARGET }}}}"
    idempotency_header: Idempotency-Key
    retry:
      schedule: [0, 1s, 1s, 2s, 2s, 4s]
      jitter: 0
extract:
  n: payload.n
  order: payload.order
  session: payload.data.id
  expected: payload.expected
collect:
{collect}
steps:
  - name: post
    connection: target
    method: POST
    path: "/batch/{name}/{{{{ group or 'all' }}}}"
    json:
      bucket: "{{{{ bucket.id }}}}"
      reason: "{{{{ bucket.reason }}}}"
      ns: "{{{{ items | map(attribute='n') | list }}}}"
"""

# The same with the item's values from a GraphQL query: its events are collected by collect jobs.
COLLECT_QUERY = COLLECT.replace(
    """extract:
  n: payload.n""",
    """query:
  connection: scope
  graphql: |
    query ($id: ID!) {{ node(id: $id) {{ id n order }} }}
  variables:
    id: "{{{{ event.resource_id }}}}"
extract:
  n: result.node.n""",
).replace(
    """connections:
""",
    """connections:
  scope:
    url: "{{{{ env.WLMAP_TEST_TARGET }}}}/graphql"
""",
)

SCHEDULED = """\
version: 1
name: {name}
trigger:
  schedule: "{cron}"
  missed: {missed}
connections:
  target:
    base_url: "{{{{ env.WLMAP_TEST_TARGET }}}}"
    idempotency_header: Idempotency-Key
steps:
  - name: post
    connection: target
    method: POST
    path: /scheduled
    json:
      since: "{{{{ since }}}}"
      until: "{{{{ until }}}}"
"""


@dataclass
class Batch:
    """One run of a bucket as the target received it."""

    key: str
    mapping: str
    group: str
    bucket: int
    reason: str
    ns: list[int]


@dataclass
class BatchTarget:
    """The target: /batch/<group> and /scheduled, each effect once per idempotency key."""

    behave: Callable[[dict[str, Any]], int] = lambda body: 200
    batches: dict[str, Batch] = field(default_factory=dict)  # by idempotency key
    scheduled: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # what the GraphQL query answers, by node id
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    @contextlib.contextmanager
    def running(self) -> Iterator[BatchTarget]:
        from fakes import FakeServer, Recorded, Reply

        def batch(request: Recorded) -> Reply:
            body = request.json()
            status = self.behave(body)
            with self.lock:
                self.requests += 1
                if status < 300:
                    key = request.header("idempotency-key") or ""
                    mapping, _, group = request.path.removeprefix("/batch/").partition("/")
                    found = Batch(key, mapping, group, int(body["bucket"]), body["reason"], body["ns"])
                    self.batches.setdefault(key, found)
            return Reply.json({}, status)

        def scheduled(request: Recorded) -> Reply:
            with self.lock:
                self.scheduled.setdefault(request.header("idempotency-key") or "", request.json())
            return Reply.json({})

        def graphql(request: Recorded) -> Reply:
            node = request.json()["variables"]["id"]
            with self.lock:
                return Reply.json({"data": {"node": {"id": node, **self.nodes.get(node, {})}}})

        with FakeServer() as server:
            server.route("POST", "/graphql", graphql)
            server.route("POST", "/batch/*", batch)
            server.route("POST", "/scheduled", scheduled)
            self.url = server.url
            yield self

    def by_bucket(self, mapping: str | None = None) -> dict[int, Batch]:
        with self.lock:
            return {b.bucket: b for b in self.batches.values() if mapping in (None, b.mapping)}


def collecting_service(
    tmp_path: Path,
    target: BatchTarget,
    collect: str | dict[str, str],
    *,
    queried: tuple[str, ...] = (),
    make: Callable[..., Service] = Service,
    **options: Any,
) -> Service:
    """The service with collecting mappings instead of effect.yaml: {name: `collect:` as indented YAML} (or one,
    named `batches`); those named in `queried` take their items' values from a GraphQL query."""
    service = make(tmp_path, Target(url=target.url), **options)
    (service.mappings / "effect.yaml").unlink()
    for name, section in ({"batches": collect} if isinstance(collect, str) else collect).items():
        template = COLLECT_QUERY if name in queried else COLLECT
        (service.mappings / f"{name}.yaml").write_text(template.format(name=name, collect=section))
    service.command = _real_runner(service.command)  # type: ignore[method-assign]
    return service


def scheduled_service(
    tmp_path: Path, target: BatchTarget, cron: str, *, missed: str = "run_once", **options: Any
) -> Service:
    service = Service(tmp_path, Target(url=target.url), **options)
    (service.mappings / "effect.yaml").unlink()
    (service.mappings / "nightly.yaml").write_text(SCHEDULED.format(name="nightly", cron=cron, missed=missed))
    service.command = _real_runner(service.command)  # type: ignore[method-assign]
    return service


def _real_runner(command: Callable[[], list[str]]) -> Callable[[], list[str]]:
    def real() -> list[str]:
        args = command()
        at = args.index("--runner")
        return [*args[:at], *args[at + 2 :]]

    return real


def event_body(n: int, order: str, session: str | None = None, expected: int | None = None) -> bytes:
    body = json.loads(body_for(session or f"S{n}", n))
    body.update(order=order, expected=expected)
    return json.dumps(body).encode()


def post(client: httpx.Client, service: Service, body: bytes, delivery: str) -> httpx.Response:
    return client.post(f"{service.url}/webhooks", content=body, headers=signed_headers(body, delivery))
