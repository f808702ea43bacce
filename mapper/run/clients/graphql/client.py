"""GraphQLClient: gql's client over one connection, for the mapping's Scope AR query and its GraphQL steps.

What gql gives here: the request as gql's `GraphQLRequest` (the document parsed by graphql-core, variables and
operation name with it), the session protocol (`AsyncClientSession.execute`) that turns the transport's
ExecutionResult into data or a `TransportQueryError` carrying `errors`, `data` and `extensions`, and the
introspection query with `build_client_schema` (`introspection.py`). Given an API schema, gql would also
validate documents and serialise variables (custom scalars, enums) before sending; wlmap checks documents against
a schema when the mapping is validated (`--graphql-schema`), so the client runs without one.
What stays ours (`transport.py`): the HTTP request and everything around it.

Scope AR answers errors with HTTP 200 (`{"data": {"node": null}, "errors": [{"message": "Not authorized to read
object"}]}`); for the query any `errors` entry is a failure, and only a failed answer (5xx, 429, no answer) is
worth retrying: a query error or a refused permission does not fix itself. A step's answer goes back whole to the
runner, which applies the step's own rules (`run/answers.py`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from graphql import GraphQLError

from mapper.run.clients.auth import TokenCache
from mapper.run.clients.errors import AuthFailure, GraphQLFailure, TransportFailure
from mapper.run.clients.exchange import MAX_ANSWER_BYTES, Exchange, Response
from mapper.run.clients.graphql.answer import GraphQLAnswer
from mapper.run.clients.graphql.transport import Answered, ConnectionTransport, NotGraphQL, parsed
from mapper.run.clients.http import ConnectionClient, Sleep
from mapper.run.clients.settings import ConnectionSettings
from mapper.run.clients.transport import Stack
from mapper.run.masking import Masker

_DENIED = re.compile(r"not authori[sz]ed|unauthori[sz]ed|forbidden|permission|access denied", re.IGNORECASE)


class GraphQLClient:
    """Runs GraphQL documents against one connection's `url`: the Scope AR endpoint, or a target's GraphQL API."""

    def __init__(
        self,
        connection: ConnectionSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        token_cache: TokenCache | None = None,
        sleep: Sleep = asyncio.sleep,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        stack: Stack = "aiohttp",
        masker: Masker | None = None,
    ) -> None:
        self.http = ConnectionClient(
            connection,
            transport=transport,
            token_cache=token_cache,
            sleep=sleep,
            max_answer_bytes=max_answer_bytes,
            stack=stack,
            masker=masker,
        )
        self.masker = self.http.masker
        self.transport = ConnectionTransport(self.http)
        # No timeout of gql's own (its default is 10 s): the connection's `timeout` bounds each attempt, and
        # quick retries may take longer than one attempt in all.
        self.gql = Client(transport=self.transport, execute_timeout=None)
        # A session needs no connecting: our transport opens nothing (the ConnectionClient's pool connects).
        self.session = AsyncClientSession(client=self.gql)

    async def aclose(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> GraphQLClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def send(
        self,
        document: str,
        variables: Mapping[str, Any],
        operation: str | None = None,
        *,
        exchanges: list[Exchange],
        step: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> GraphQLAnswer:
        """The whole answer, whatever it says; TransportFailure (AuthFailure) only when there is none.

        `idempotency_key` goes on a mutation when the connection has an `idempotency_header`; `timeout`
        replaces the connection's for this request."""
        try:
            request = GraphQLRequest(parsed(document), variable_values=dict(variables), operation_name=operation)
        except GraphQLError as exc:  # checked by `wlmap validate`; here only for a plan built by hand
            raise GraphQLFailure(f"the GraphQL document cannot be read: {exc.message}", False) from None
        answers: list[Response] = []
        try:
            result = await self.session.execute(
                request,
                get_execution_result=True,
                exchanges=exchanges,
                answers=answers,
                step=step,
                idempotency_key=idempotency_key,
                timeout=timeout,
            )
        except TransportQueryError as exc:  # gql: the answer has `errors`
            return GraphQLAnswer(answers[-1], exc.data, list(exc.errors or []))
        except Answered as exc:
            body = exc.response.json()
            errors = body.get("errors") if isinstance(body, dict) else None
            return GraphQLAnswer(exc.response, None, errors if isinstance(errors, list) else [])
        except NotGraphQL as exc:
            return GraphQLAnswer(exc.response, problem=exc.problem)
        return GraphQLAnswer(answers[-1], result.data, [])

    async def execute(
        self,
        document: str,
        variables: Mapping[str, Any],
        operation: str | None = None,
        *,
        exchanges: list[Exchange],
        step: str | None = None,
    ) -> dict[str, Any]:
        """The `data` of a query's answer; GraphQLFailure for anything else (the mapping's Scope AR query)."""
        try:
            answer = await self.send(document, variables, operation, exchanges=exchanges, step=step)
        except AuthFailure as failure:
            raise GraphQLFailure(
                f"the GraphQL query could not be sent: {failure.reason}",
                failure.retryable,
                failure.retry_after,
                denied=not failure.retryable,
            ) from None
        except GraphQLFailure:
            raise
        except TransportFailure as failure:
            raise GraphQLFailure(
                f"the GraphQL query got no answer: {failure.reason}",
                failure.retryable,
                failure.retry_after,
                outcome_unknown=failure.outcome_unknown,
            ) from None
        return data_of(answer)


def data_of(answer: GraphQLAnswer) -> dict[str, Any]:
    """The answer's `data`, or GraphQLFailure saying what went wrong and whether a retry can fix it."""
    response = answer.response
    status = response.status
    messages = answer.messages
    denied = status in (401, 403) or any(_DENIED.search(message) for message in messages)
    if not 200 <= status < 300:
        if 300 <= status < 400:
            what = f"a redirect to {response.masker.url(response.headers.get('location', '?'))}, not followed"
        else:
            what = "; ".join(messages) or response.excerpt(200) or "an empty body"
        retryable = not denied and (status in (408, 425, 429) or status >= 500)
        raise GraphQLFailure(
            f"the GraphQL endpoint answered {status}: {what}",
            retryable,
            response.retry_after if retryable else None,
            status=status,
            denied=denied,
        )
    if answer.problem is not None:
        raise GraphQLFailure(answer.problem_words, False, status=status)
    if messages:
        raise GraphQLFailure("the GraphQL query failed: " + "; ".join(messages), False, status=status, denied=denied)
    if not isinstance(answer.data, dict):
        raise GraphQLFailure(f"the GraphQL answer has no `data`: {response.excerpt(200)}", False, status=status)
    return answer.data
