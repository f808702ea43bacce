"""What an answer means for its step: the step's `outcomes:` rules, `on_status`, `expect`, a GraphQL answer's
`errors` (with `on_error`), then the defaults (docs/mapping.md §9, "Outcomes, retries and dead events").

    1. `outcomes:`  the first rule whose `when` holds for {status, headers, body} decides, with its reason
    2. `on_status`  the exact status, then its class (`4xx`)
    3. `expect`     a listed status succeeds; another 2xx fails ("expect replaces any 2xx")
    4. GraphQL      `errors` fail the step: each error's code per `on_error`, else retry for a code that asks
                    for it (THROTTLED, RATE_LIMITED), else fail; the event takes the worst of them
    5. defaults     2xx success; 408, 425, 429, 5xx and the connection's retry statuses retry; others fail
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from mapper.language.plan import Connection, Outcome, Step
from mapper.run.clients.exchange import Response
from mapper.run.clients.graphql import GraphQLAnswer, error_code
from mapper.run.matching import truthy

# Codes that say "later": Shopify's THROTTLED, GitHub's RATE_LIMITED (and Apollo's spelling of both).
RETRY_CODES = frozenset({"THROTTLED", "RATE_LIMITED", "RATE_LIMIT_EXCEEDED", "TOO_MANY_REQUESTS"})
_WORST_FIRST: tuple[Outcome, ...] = ("fail", "retry", "skip", "success")

Search = Callable[[Any, Mapping[str, Any]], Any]  # evaluates an outcome rule's `when` (the runner's, with its errors)


class Decision(NamedTuple):
    outcome: Outcome
    detail: str | None  # what follows "answered <status>" in the reason, when the status is not all of it
    decided_by: str  # for traces and test coverage: "outcomes 1", "on_status 404", "expect", "on_error NOT_FOUND"


def decide(
    step: Step,
    connection: Connection,
    response: Response,
    view: Mapping[str, Any],
    graphql: GraphQLAnswer | None,
    search: Search,
) -> Decision:
    """The step's outcome for this answer; `view` is {status, headers, body} as `capture` sees it."""
    for number, rule in enumerate(step.outcomes, 1):
        if truthy(search(rule.when, view)):
            return Decision(rule.outcome, None, f"outcomes {number}")
    status = response.status
    explicit = step.on_status.get(str(status)) or step.on_status.get(f"{status // 100}xx")
    if explicit:
        return Decision(explicit, None, f"on_status {status}")
    if step.expect is not None and status in step.expect:
        return _graphql(step, graphql) if graphql is not None else Decision("success", None, "expect")
    if 200 <= status < 300:
        if step.expect is not None:
            listed = ", ".join(str(s) for s in sorted(step.expect))
            return Decision("fail", f", but the step expects {listed}", "expect")
        return _graphql(step, graphql) if graphql is not None else Decision("success", None, "default")
    if status in connection.retry.statuses or status >= 500:
        return Decision("retry", None, "default")
    return Decision("fail", None, "default")


def _graphql(step: Step, answer: GraphQLAnswer) -> Decision:
    """A 2xx GraphQL answer: not one at all, with `errors`, or with data."""
    if answer.problem is not None:
        return Decision("fail", None, "graphql")  # the answer's own words say it: `problem_words`
    if not answer.errors:
        return Decision("success", None, "graphql")
    outcomes: list[tuple[Outcome, str]] = []
    for error in answer.errors:
        code = error_code(error)
        if code is not None and code in step.on_error:
            outcomes.append((step.on_error[code], f"on_error {code}"))
        elif code is not None and code in RETRY_CODES:
            outcomes.append(("retry", f"error code {code}"))
        else:
            outcomes.append(("fail", "graphql errors"))
    outcome, decided_by = min(outcomes, key=lambda pair: _WORST_FIRST.index(pair[0]))
    return Decision(outcome, " with GraphQL errors: " + "; ".join(_with_codes(answer)), decided_by)


def _with_codes(answer: GraphQLAnswer) -> list[str]:
    words = []
    for error, message in zip(answer.errors, answer.messages, strict=False):
        code = error_code(error)
        words.append(f"{message} [{code}]" if code else message)
    return words
