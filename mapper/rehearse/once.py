"""Run a mapping once for one webhook: normalise → match → run → close, live or answered by stubs.

`run_once` is the one path behind `wlmap run MAPPING --event/--case`, every case of `wlmap test`, and the
tests that run the shipped mappings' cases.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mapper import events
from mapper.language import conversions
from mapper.language.plan import Plan
from mapper.rehearse.inputs import Inputs
from mapper.rehearse.stubs import StubTransport
from mapper.rehearse.tests_file import Case
from mapper.run import matching
from mapper.run.outcome import RunResult
from mapper.run.runner import Runner


@dataclass
class Rehearsal:
    event: events.Event
    matched: bool
    why: str  # why the trigger matched or not, in words
    result: RunResult | None = None  # None when the trigger did not match
    unstubbed: list[str] = field(default_factory=list)  # steps the stubs answered with their default


async def run_once(
    plan: Plan,
    body: bytes | str | Any,
    headers: Mapping[str, str],
    env: Mapping[str, str],
    *,
    stubs: StubTransport | None = None,
    idempotency_key: str = "",
) -> Rehearsal:
    """The webhook through the mapping with a runner of its own; `stubs` answer instead of the systems."""
    event = events.normalise(body, headers)
    matched, why = matching.match(plan, event)
    if not matched:
        return Rehearsal(event, False, why)
    runner = Runner(env, transport=stubs)
    try:
        result = await runner.run(plan, event, idempotency_key=idempotency_key)
    finally:
        await runner.aclose()
    return Rehearsal(event, True, why, result, list(stubs.unstubbed) if stubs else [])


def rehearse(plan: Plan, inputs: Inputs, env: Mapping[str, str], *, dry_run: bool) -> Rehearsal:
    """`wlmap run`: the saved event once, live or (dry run) answered from the saved responses."""
    stubs = StubTransport(inputs.graphql, inputs.responses, auth=inputs.auth) if dry_run else None

    async def once() -> Rehearsal:
        with conversions.fixed_now(inputs.clock):
            return await run_once(plan, inputs.body, inputs.headers, env, stubs=stubs)

    return asyncio.run(once())


def rehearse_batch(plan: Plan, case: Case, env: Mapping[str, str]) -> list[RunResult]:
    """`wlmap run` of a collecting mapping (its events collected, every bucket closed and run, stubs answering
    when the case gives answers) or of a scheduled mapping (its run for the case's `at`); every run, in order."""
    from mapper.rehearse import bucket_cases

    case = dataclasses.replace(case, env=dict(env), expect={})
    if plan.schedule is not None:
        ran, _ = asyncio.run(bucket_cases.scheduled_case(plan, case))
    else:
        ran = asyncio.run(bucket_cases.collecting_case(plan, case, close_all=True))
    return ran.results


def stand_in_env(plan: Plan, env: Mapping[str, str]) -> dict[str, str]:
    """For a dry run: every variable the mapping reads, with a visible stand-in where it is not set."""
    filled = dict(env)
    for name in plan.env_names:
        if name not in filled:
            filled[name] = f"https://{name.lower().replace('_', '-')}.example" if name.endswith("URL") else f"<{name}>"
    return filled
