"""A step's rules for what an answer means: `outcomes:` (conditions on the answer), `expect:`, `on_status:`,
and for a GraphQL step `on_error:` (error codes)."""

from __future__ import annotations

from typing import Any

from mapper.language.compiler.context import Compilation
from mapper.language.compiler.scope import RESPONSE, Scope
from mapper.language.plan import OutcomeRule
from mapper.language.source import Path

OUTCOMES = ("success", "skip", "retry", "fail")


def rules(c: Compilation, path: Path, data: Any, step: Scope, answer: Scope) -> tuple[OutcomeRule, ...]:
    """`outcomes:`: each `when` reads the answer (`answer`); each `reason` the step's names and the answer."""
    if not isinstance(data, list):
        return ()
    reasons = step.but(**RESPONSE)
    reasons.place = "reason"
    compiled = []
    for index, spec in enumerate(data):
        if not isinstance(spec, dict):
            continue
        at: Path = (*path, "outcomes", index)
        when = c.query((*at, "when"), spec.get("when"), answer)
        outcome = spec.get("outcome")
        reason = c.value((*at, "reason"), spec["reason"], reasons) if isinstance(spec.get("reason"), str) else None
        if when is not None and outcome in OUTCOMES:
            compiled.append(OutcomeRule(when, outcome, reason))
    return tuple(compiled)


def statuses(c: Compilation, path: Path, expect: Any, on_status: Any) -> tuple[frozenset[int] | None, dict[str, Any]]:
    """`expect:` (the statuses that are success) and `on_status:` (an outcome per status); never both for one."""
    outcomes: dict[str, Any] = on_status if isinstance(on_status, dict) else {}
    if not isinstance(expect, list):
        return None, {str(k): v for k, v in outcomes.items() if v in OUTCOMES}
    for status in expect:
        if isinstance(status, int) and str(status) in outcomes:
            c.error(
                (*path, "on_status", str(status)),
                f"status {status} is both expected and listed in `on_status`",
                key=True,
            )
    expected = frozenset(s for s in expect if isinstance(s, int))
    return expected, {str(k): v for k, v in outcomes.items() if v in OUTCOMES}


def error_codes(c: Compilation, path: Path, data: Any, graphql: bool) -> dict[str, Any]:
    """`on_error:` (GraphQL error code → outcome), only on a GraphQL step."""
    if data is None:
        return {}
    if not graphql:
        c.error(
            (*path, "on_error"),
            "`on_error` applies to GraphQL steps (with `graphql:`)",
            "for an HTTP answer, use `on_status` or `outcomes`",
            key=True,
        )
        return {}
    return {str(k): v for k, v in data.items() if v in OUTCOMES} if isinstance(data, dict) else {}
