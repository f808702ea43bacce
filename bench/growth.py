"""Does the cost per event stay flat as the work grows? Three in-process measures, each beside its baseline.

    python bench/growth.py [--events 1000] [--rounds 3]          (about 1-2 minutes)

1. mappings   webhook parsed, routed and run, with 1 mapping loaded vs 30 (the 29 others are for other events
              and resource types, and 5 of them are for the same events with a `when` that is false, so their
              `when` runs on every event). Target: 30 loaded cost within 0.9x of one (a rate ratio >= 0.9).
              Also routing alone: the trigger index vs checking every trigger (how it was before the index).
2. answer     the GraphQL answer grows from 2 KB to 200 KB (a list of objects under the node): CPU per event at
              each size, and µs per KB over the smallest answer. Linear when µs per KB stays about the same.
3. for_each   a step sends one PUT per item of a list from the answer, 1 to 500 items: µs per item over one item.

Everything runs on httpx.MockTransport answering in memory (as bench/run_inprocess.py), best of --rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from mapper.events import normalise
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.run.runner import Runner
from mapper.service.mappings import Mappings, matches

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import run_inprocess  # noqa: E402  (its samples, environment and answers)

GROWN = """version: 1
name: grown
trigger:
  events: [update, updated, finished]
  resource_types: [Call, CallSession]
connections:
  scope:
    url: "https://cms.scopear.com/api/v3/graphql"
    headers:
      Authorization: "Token token=scope-token"
  target:
    base_url: "https://target.example/api"
query:
  connection: scope
  graphql: |
    query Grown($id: ID!) { node(id: $id) { id ... on Call { things { id name value } } } }
  variables:
    id: "{{ event.resource_id }}"
extract:
  call_id: result.node.id
  things: result.node.things
  count: length(result.node.things)
steps:
STEPS"""

ONE_STEP = """  - name: note
    connection: target
    method: PATCH
    path: "/calls/{{ call_id }}"
    json:
      things: "{{ count }}"
"""

EACH_STEP = """  - name: each
    connection: target
    method: PUT
    path: "/things/{{ item.id }}"
    for_each: things
    json:
      name: "{{ item.name }}"
      value: "{{ item.value }}"
"""

OTHER = """version: 1
name: other-{n}
trigger:
{trigger}
connections:
  target:
    base_url: "https://target.example"
steps:
  - name: post
    connection: target
    method: POST
    path: /things
    json:
      id: "{{{{ event.resource_id }}}}"
"""

JSON = {"content-type": "application/json"}


def others(count: int) -> list[str]:
    """Mappings for other resource types and events; every sixth is for the same events with a false `when`."""
    texts = []
    for n in range(count):
        if n % 6 == 5:
            trigger = "  events: [update, updated, finished]\n  when: \"payload.data.state == 'never'\""
        else:
            trigger = f"  events: [created, deleted]\n  resource_types: [Thing{n}]"
        texts.append(OTHER.format(n=n, trigger=trigger))
    return texts


def best(rounds: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(rounds))


async def per_event(run: Callable[[], object], events: int) -> float:
    started = time.process_time()
    for _ in range(events):
        await run()  # type: ignore[misc]
    return (time.process_time() - started) / events


def loaded(folder: Path, count: int) -> Mappings:
    (folder / "servicenow.yaml").write_text((ROOT / "mappings/servicenow.yaml").read_text())
    for n, text in enumerate(others(count - 1)):
        (folder / f"other-{n}.yaml").write_text(text)
    mappings = Mappings([folder], run_inprocess.ENV)
    mappings.load()
    return mappings


def mappings_section(events: int, rounds: int) -> None:
    transport = httpx.MockTransport(run_inprocess.answer)
    runner = Runner(run_inprocess.ENV, transport=transport)
    with tempfile.TemporaryDirectory() as one_dir, tempfile.TemporaryDirectory() as many_dir:
        one, many = loaded(Path(one_dir), 1), loaded(Path(many_dir), 30)

        async def webhook(mappings: Mappings) -> None:
            event = normalise(json.loads(run_inprocess.BODY), {})
            for job in mappings.route(event):
                assert (await runner.run(mappings.current()[job.mapping], event)).status == "done"

        async def measure() -> tuple[float, float]:
            await webhook(one)
            await webhook(many)
            single = multi = float("inf")
            for _ in range(rounds):  # interleaved, so a burst of noise hits one round of both
                single = min(single, await per_event(lambda: webhook(one), events))
                multi = min(multi, await per_event(lambda: webhook(many), events))
            await runner.aclose()
            return single, multi

        single, multi = asyncio.run(measure())
        event = normalise(json.loads(run_inprocess.BODY), {})
        plans = list(many.current().values())
        indexed = best(rounds, lambda: _timed(lambda: many.route(event), events * 10))
        each = best(rounds, lambda: _timed(lambda: [p for p in plans if matches(p, event)], events * 10))
    print(f"growth    mappings: one event parsed, routed and run: {single * 1e6:.0f} µs with 1 mapping loaded,")
    print(f"growth      {multi * 1e6:.0f} µs with 30: rate ratio {single / multi:.2f}x (target >= 0.9x)")
    print(
        f"growth      routing alone with 30: {indexed * 1e6:.1f} µs indexed vs {each * 1e6:.1f} µs trigger by trigger"
    )


def _timed(call: Callable[[], object], times: int) -> float:
    started = time.process_time()
    for _ in range(times):
        call()
    return (time.process_time() - started) / times


def answer_for(items: int, filler: int) -> bytes:
    things = [{"id": f"T{n}", "name": f"thing {n}", "value": "x" * filler} for n in range(items)]
    return json.dumps({"data": {"node": {"__typename": "Call", "id": "C1", "things": things}}}).encode()


def grown_plan(steps: str) -> Plan:
    plan, problems = loader.load_text(GROWN.replace("STEPS", steps), "grown.yaml")
    assert plan is not None, problems
    return plan


async def cost(plan: Plan, body: bytes, events: int, rounds: int) -> float:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v3/graphql":
            return httpx.Response(200, headers=JSON, content=body)
        return httpx.Response(200, headers=JSON, content=b'{"ok": true}')

    runner = Runner({}, transport=httpx.MockTransport(answer))
    event = normalise(run_inprocess.BODY, {})
    assert (await runner.run(plan, event)).status == "done"
    took = float("inf")
    for _ in range(rounds):
        took = min(took, await per_event(lambda: runner.run(plan, event), events))
    await runner.aclose()
    return took


def linear(label: str, unit: str, sizes: Sequence[float], costs: Sequence[float]) -> None:
    base_size, base_cost = sizes[0], costs[0]
    for size, took in zip(sizes, costs, strict=True):
        line = f"growth      {size:>6g} {unit}: {took * 1e6:8.0f} µs per event"
        if size != base_size:
            line += f", {(took - base_cost) * 1e6 / (size - base_size):6.2f} µs per {unit} over {base_size:g} {unit}"
        print(line)


def answer_section(events: int, rounds: int) -> None:
    plan = grown_plan(ONE_STEP)
    bodies = [answer_for(items, 90) for items in (16, 400, 800, 1600)]
    sizes = [round(len(body) / 1024, 1) for body in bodies]
    costs = [asyncio.run(cost(plan, body, max(50, events // 10), rounds)) for body in bodies]
    print("growth    answer: a GraphQL answer of growing size (one PATCH after it)")
    linear("answer", "KB", sizes, costs)


def for_each_section(events: int, rounds: int) -> None:
    plan = grown_plan(EACH_STEP)
    counts = [1, 100, 250, 500]
    costs = [asyncio.run(cost(plan, answer_for(items, 20), max(20, events // 50), rounds)) for items in counts]
    print("growth    for_each: one PUT per item")
    linear("for_each", "item", counts, costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    mappings_section(args.events, args.rounds)
    answer_section(args.events, args.rounds)
    for_each_section(args.events, args.rounds)


if __name__ == "__main__":
    main()
