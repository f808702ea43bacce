"""`wlmap test`: run a mapping's test cases against stubbed systems and say what no case exercised.

Each case runs through `once.run_once` on a stub transport (nothing is sent over the network); its run is
compared with what the case expects (`expectations`). Coverage names the trigger outcomes, steps and
branches that no case exercised.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapper.language import conversions
from mapper.language.plan import Plan, Step
from mapper.links import LinkError
from mapper.rehearse import bucket_cases, expectations
from mapper.rehearse.links import with_link
from mapper.rehearse.once import Rehearsal, run_once
from mapper.rehearse.stubs import AUXILIARY, StubTransport
from mapper.rehearse.tests_file import Case, load_cases
from mapper.run.outcome import RunResult


@dataclass
class CaseResult:
    case: Case
    failures: list[str] = field(default_factory=list)
    result: RunResult | None = None
    steps_sent: list[str] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)  # every run of the case (a sequence of events)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Suite:
    plan: Plan
    file: Path
    results: list[CaseResult] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)


async def rehearse_case(plan: Plan, case: Case, stubs: StubTransport) -> Rehearsal:
    """The case's webhook through the mapping, answered by `stubs` (made from the case's answers).

    A case's `link:` parameters are put where the mapping reads externalData first, in the webhook or in the
    GraphQL answer the stubs give (LinkError when the link cannot be made).
    """
    case = with_link(plan, case)
    stubs.graphql = case.graphql
    with conversions.fixed_now(case.clock):
        return await run_once(plan, case.body, case.headers, case.env, stubs=stubs, idempotency_key=f"test|{case.name}")


async def run_case(plan: Plan, case: Case) -> CaseResult:
    if plan.collect is not None or plan.schedule is not None:
        return await _run_batch_case(plan, case)
    outcome = CaseResult(case)
    stubs = StubTransport(case.graphql, case.responses, auth=case.auth)
    try:
        ran = await rehearse_case(plan, case, stubs)
    except LinkError as exc:
        outcome.failures.append(f"link: {exc}")
        return outcome
    expected_match = case.expect.get("matched", True)
    if ran.matched != expected_match:
        outcome.failures.append(
            f"expected the trigger {'to match' if expected_match else 'not to match'}, but: {ran.why}"
        )
        return outcome
    if ran.result is None:
        return outcome
    outcome.result = ran.result
    outcome.steps_sent = [s.step for s in stubs.sent if s.step and s.step not in ("query", *AUXILIARY)]
    outcome.failures += expectations.check(case, ran.result, stubs.sent)
    return outcome


async def _run_batch_case(plan: Plan, case: Case) -> CaseResult:
    """A collecting mapping's sequence of events, or a scheduled mapping's due time."""
    outcome = CaseResult(case)
    if plan.schedule is not None:
        ran, stubs = await bucket_cases.scheduled_case(plan, case)
        outcome.steps_sent = [s.step for s in stubs.sent if s.step and s.step not in ("query", *AUXILIARY)]
    else:
        ran = await bucket_cases.collecting_case(plan, case)
    outcome.failures, outcome.results = ran.failures, ran.results
    outcome.result = ran.results[-1] if ran.results else None
    return outcome


def run_suite(plan: Plan, tests_file: Path) -> Suite:
    cases, _ = load_cases(tests_file)
    suite = Suite(plan, tests_file)

    async def all_cases() -> None:
        for case in cases:
            suite.results.append(await run_case(plan, case))

    asyncio.run(all_cases())
    suite.uncovered = coverage(plan, suite.results)
    return suite


def coverage(plan: Plan, results: list[CaseResult]) -> list[str]:
    """What no case exercised: trigger outcomes, skip_unless both ways, each step sent, when both ways, on_status,
    each outcome rule and each on_error code."""
    gaps = []
    runs = [run for r in results for run in (r.results or ([r.result] if r.result is not None else []))]
    stages = [stage for run in runs for stage in run.trace.get("stages", [])]
    if plan.schedule is None and not any(r.case.expect.get("matched") is False for r in results):
        gaps.append("no case checks an event the trigger ignores")
    if plan.skip_unless is not None:
        seen = {s.get("passed") for s in stages if s.get("stage") == "skip_unless"}
        for value, words in ((True, "passes"), (False, "skips")):
            if value not in seen:
                gaps.append(f"no case where skip_unless {words}")
    for step in plan.steps:
        gaps += _step_gaps(step, [s for s in stages if s.get("stage") == "step" and s.get("name") == step.name])
    if not any(run.status in ("dead", "retry") for run in runs):
        gaps.append("no case where the run fails")
    return gaps


def _step_gaps(step: Step, runs: list[dict[str, Any]]) -> list[str]:
    """What no case exercised of one step: sent, `when` false, each on_status, outcome rule and on_error code."""
    gaps = []
    if not any(s.get("ran") for s in runs):
        gaps.append(f"step `{step.name}` never sent a request")
    if step.when is not None and not any(s.get("ran") is False for s in runs):
        gaps.append(f"step `{step.name}`: no case where its `when` is false")
    outcomes = {s.get("outcome") for s in runs}
    statuses = {s.get("status") for s in runs}
    for status, outcome in step.on_status.items():
        if not any(str(x) == status or (status.endswith("xx") and str(x)[:1] == status[0]) for x in statuses if x):
            gaps.append(f"step `{step.name}`: on_status {status} ({outcome}) never exercised")
    decided = {s.get("decided_by") for s in runs}
    for number, rule in enumerate(step.outcomes, 1):
        if f"outcomes {number}" not in decided:
            gaps.append(f"step `{step.name}`: outcome rule {number} ({rule.outcome}) never exercised")
    for code, on_error in step.on_error.items():
        if f"on_error {code}" not in decided:
            gaps.append(f"step `{step.name}`: on_error {code} ({on_error}) never exercised")
    if runs and "success" in outcomes and not any(o in outcomes for o in ("fail", "retry", "skip")):
        gaps.append(f"step `{step.name}`: no case where it fails")
    return gaps
