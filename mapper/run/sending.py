"""A step's request rendered and sent through its connection's client, and its reason in words when it fails."""

from __future__ import annotations

from typing import Any

from mapper.language.expressions import EvaluationError
from mapper.language.plan import Plan, Step
from mapper.run import answers
from mapper.run.clients.exchange import Response
from mapper.run.clients.graphql import GraphQLAnswer, GraphQLClient
from mapper.run.clients.http import NO_JSON, ConnectionClient
from mapper.run.stop import render, text_of


async def send_http(
    plan: Plan,
    step: Step,
    client: ConnectionClient,
    scope: dict[str, Any],
    exchanges: list[Any],
    step_key: str,
    where: str,
) -> Response:
    """An HTTP step's request, rendered and sent."""
    path = render(plan, step.path, scope, where) if step.path else None
    url = render(plan, step.url, scope, where) if step.url else None
    params = {name: text_of(render(plan, value, scope, where)) for name, value in step.params}
    headers = {name: text_of(render(plan, value, scope, where)) for name, value in step.headers}
    body = render(plan, step.body.value, scope, where) if step.body.value is not None else None
    return await client.send(
        step.method,
        path=path,
        url=url,
        params=params,
        headers=headers,
        json=body if step.body.kind == "json" else NO_JSON,
        form={k: text_of(v) for k, v in body.items()} if step.body.kind == "form" and isinstance(body, dict) else None,
        content=text_of(body).encode() if step.body.kind == "text" else None,
        content_type=step.body.content_type,
        timeout=step.timeout,
        exchanges=exchanges,
        # reads are safe to repeat; keys go on writes, where the target uses them to drop a repeat
        idempotency_key=None if step.method in ("GET", "HEAD") else step_key,
        step=step.name,
    )


async def send_graphql(
    plan: Plan,
    step: Step,
    client: GraphQLClient,
    scope: dict[str, Any],
    exchanges: list[Any],
    step_key: str,
    where: str,
) -> GraphQLAnswer:
    """A GraphQL step's document with its variables, through the connection's gql client."""
    call = step.graphql
    assert call is not None
    variables = render(plan, call.variables, scope, where)
    return await client.send(
        call.document,
        variables if isinstance(variables, dict) else {},
        call.operation,
        exchanges=exchanges,
        step=step.name,
        idempotency_key=step_key if call.mutation else None,
        timeout=step.timeout,
    )


def reason_for(
    plan: Plan,
    step: Step,
    decision: answers.Decision,
    connection: str,
    response: Response,
    answer: GraphQLAnswer | None,
    scope: dict[str, Any],
    where: str,
) -> str:
    """Why the step ended as it did, in words: the rule's own reason, or what the target answered."""
    if answer is not None and answer.problem is not None and decision.decided_by == "graphql":
        return f"{where}: {answer.problem_words}"
    answered = f"{where}: {connection} answered {response.status}"
    if decision.detail is not None and decision.detail.startswith(" with "):
        answered += decision.detail  # the GraphQL errors, with their codes
    elif answer is not None and answer.messages:
        answered += ": " + "; ".join(answer.messages)
    else:
        answered += excerpt(response)
    if decision.detail is not None and not decision.detail.startswith(" with "):
        answered += decision.detail
    if decision.decided_by.startswith("outcomes "):
        rule = step.outcomes[int(decision.decided_by.split()[1]) - 1]
        if rule.reason is not None:
            try:
                return f"{where}: {text_of(rule.reason.render(scope))}"
            except EvaluationError as exc:
                return f"{answered} ({rule.reason.where}: the reason could not be written: {exc})"
    if decision.outcome == "skip":
        return f"{answered}, which this step treats as skip"
    if decision.outcome == "fail" and 300 <= response.status < 400:
        answered += " (redirects are never followed)"
    return answered


def body_of(response: Response) -> Any:
    parsed = response.json()
    if parsed is not None:
        return parsed
    return response.content.decode("utf-8", errors="replace")


def excerpt(response: Response) -> str:
    """The answer's start for a reason, masked before it is cut (a cut must not leave half a secret)."""
    text = " ".join(response.content.decode("utf-8", errors="replace").split())
    return f": {response.masker.excerpt(text, 201)}" if text else ""
