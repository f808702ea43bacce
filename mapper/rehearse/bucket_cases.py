"""`wlmap test` cases of collecting and scheduled mappings: a sequence of events on a clock, or a due time.

A collecting mapping's case gives `events:` (each with its own GraphQL answer and time) and maybe `at:` (the
clock at the end); `expect: {buckets: [...]}` says, bucket by bucket in the order they closed, the group, how
many items, why it closed (`closed_by`, words the reason contains) and what its run did (the same checks as a
case of one event). A scheduled mapping's case gives `at:` (the due time) and maybe `since:`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mapper.language.plan import Plan
from mapper.rehearse import expectations
from mapper.rehearse.buckets import collect_events, run_bucket, run_scheduled
from mapper.rehearse.stubs import StubTransport
from mapper.rehearse.tests_file import Case
from mapper.run.buckets import Window
from mapper.run.outcome import RunResult


@dataclasses.dataclass
class Ran:
    """What a case's runs came to: failures in words, every run (for coverage), the last one."""

    failures: list[str]
    results: list[RunResult]


async def collecting_case(plan: Plan, case: Case, close_all: bool = False) -> Ran:
    """Feed the case's events, close what closes by its clock (with `close_all`, every open bucket too), run each
    closed bucket; failures against `expect`."""
    arrivals = case.events or [(case.at or 0.0, case.body, case.headers, case.graphql)]
    buckets, seen = await collect_events(
        plan, arrivals, case.env, lambda graphql: StubTransport(graphql, case.responses)
    )
    failures: list[str] = []
    if "matched" in case.expect:
        wanted_match = bool(case.expect["matched"])
        for number, arrival in enumerate(seen, 1):
            if arrival.matched != wanted_match:
                failures.append(
                    f"event {number}: expected the trigger {'to' if wanted_match else 'not to'} match: {arrival.why}"
                )
        if not wanted_match:
            return Ran(failures, [])
    results = [a.result for a in seen if a.result is not None]
    for number, arrival in enumerate(seen, 1):
        if arrival.result is not None and arrival.result.collected is None and "buckets" in case.expect:
            failures.append(f"event {number} was not collected ({arrival.result.status}): {arrival.result.reason}")
    if case.at is not None:
        buckets.advance(case.at)
    if close_all and buckets.open:
        rules = ", ".join(buckets.words[k] for k in ("count", "window", "idle", "at", "until") if k in buckets.words)
        last = max([a.at for a in seen] + [case.at or 0.0])
        buckets.close_all(last, f"closed for this run (the service closes it on: {rules or 'its limits'})")
    for closed in buckets.closed:
        results.append(await run_bucket(plan, closed, case.env, StubTransport(None, _fresh(case))))
    wanted = case.expect.get("buckets")
    if not isinstance(wanted, list):
        return Ran(failures + _single(case, results), results)
    if len(wanted) != len(buckets.closed):
        still = f"; {len(buckets.open)} still open" if buckets.open else ""
        failures.append(f"buckets: expected {len(wanted)} to close, {len(buckets.closed)} closed{still}")
    for number, (expect, closed) in enumerate(zip(wanted, buckets.closed, strict=False), 1):
        failures += [f"bucket {number}: {failure}" for failure in _bucket(case, expect, closed)]
    return Ran(failures, results)


def _bucket(case: Case, expect: Any, closed: Any) -> list[str]:
    if not isinstance(expect, dict):
        return ["each entry of `buckets` is a set of expectations"]
    bucket, failures = closed.bucket, []
    if "group" in expect and expect["group"] != bucket.group:
        failures.append(f"group: expected {expect['group']!r}, got {bucket.group!r}")
    if "items" in expect and expect["items"] != len(bucket.items):
        failures.append(f"items: expected {expect['items']}, got {len(bucket.items)}")
    if "closed_by" in expect and str(expect["closed_by"]) not in bucket.reason:
        failures.append(f"closed_by: expected {expect['closed_by']!r} in the reason, got {bucket.reason!r}")
    checks = {k: v for k, v in expect.items() if k not in ("group", "items", "closed_by")}
    sent = closed.stubs.sent if closed.stubs is not None else []
    return failures + expectations.check(dataclasses.replace(case, expect=checks), closed.result, sent)


def _single(case: Case, results: list[RunResult]) -> list[str]:
    """A case without `buckets:` checks the last run, like a case of one event."""
    return expectations.check(case, results[-1], []) if results and case.expect else []


def _fresh(case: Case) -> dict[str, list[Any]]:
    return {step: list(answers) for step, answers in case.responses.items()}


async def scheduled_case(plan: Plan, case: Case) -> tuple[Ran, StubTransport]:
    schedule = plan.schedule
    assert schedule is not None
    if case.at is None:
        return Ran(["a scheduled mapping's case needs `at:` (the due time it runs for)"], []), StubTransport()
    since = case.since if case.since is not None else schedule.cron.previous(case.at)
    stubs = StubTransport(case.graphql, _fresh(case))
    result = await run_scheduled(plan, Window(case.at, since), case.env, stubs)
    return Ran(expectations.check(case, result, stubs.sent), [result]), stubs
