"""gql's AsyncTransport over our ConnectionClient: every GraphQL request is one JSON POST sent by our own client.

Why not gql's own transports: gql 4.4's `HTTPXAsyncTransport` (and the aiohttp one) open their own HTTP client
per session, so OAuth2 refresh on 401, quick retries, the URL checks, idempotency keys and the masked exchange
record would all be built a second time around them; they return a 500 whose body has `errors` exactly like a
200 with `errors` (the status is lost, so "retry a 5xx, never a query error" cannot be told apart), wrap every
network error, timeouts included, as `TransportConnectionFailed(str(exc))` (often an empty message), and their
`TransportServerError` text carries the full, unmasked URL. Here the transport only turns a request into our
POST and our answer into gql's ExecutionResult; what gql does with it is in `client.py`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from functools import lru_cache
from typing import Any

from gql import GraphQLRequest
from gql.transport.async_transport import AsyncTransport
from gql.transport.exceptions import TransportProtocolError, TransportServerError
from graphql import DocumentNode, ExecutionResult, OperationDefinitionNode, OperationType, Source, parse

from mapper.run.clients.exchange import Exchange, Response
from mapper.run.clients.graphql.answer import Problem
from mapper.run.clients.http import ConnectionClient


class Answered(TransportServerError):
    """The endpoint answered with a status other than 2xx; the answer travels with it (gql passes it on)."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"the GraphQL endpoint answered {response.status}", response.status)
        self.response = response


class NotGraphQL(TransportProtocolError):
    """A 2xx answer that is not a GraphQL answer: not JSON, not an object, or neither `data` nor `errors`."""

    def __init__(self, response: Response, problem: Problem) -> None:
        super().__init__(f"the answer is not a GraphQL answer ({problem})")
        self.response = response
        self.problem: Problem = problem


class ConnectionTransport(AsyncTransport):
    """Sends gql's requests with one connection's ConnectionClient (its auth, retries, checks and trace)."""

    def __init__(self, http: ConnectionClient) -> None:
        self.http = http

    async def connect(self) -> None:
        """Nothing to open: the ConnectionClient's pool connects when a request is sent."""

    async def close(self) -> None:
        await self.http.aclose()

    async def execute(  # gql passes the session's extra keyword arguments through to here
        self,
        request: GraphQLRequest,
        *,
        exchanges: list[Exchange] | None = None,
        answers: list[Response] | None = None,
        step: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> ExecutionResult:
        """POST the request; the HTTP answer is appended to `answers` (the caller judges its status and headers).

        gql itself calls this without our arguments (its introspection query): then nothing is kept."""
        exchanges = [] if exchanges is None else exchanges
        answers = [] if answers is None else answers
        text = source_text(request.document)
        payload: dict[str, Any] = {"query": text, "variables": request.variable_values or {}}
        if request.operation_name:
            payload["operationName"] = request.operation_name
        query = _is_query(text, request.operation_name)
        response = await self.http.send(
            "POST",
            json=payload,
            # a query is safe to repeat although it is a POST; a mutation only with an idempotency key it carries
            idempotent=True if query else None,
            idempotency_key=None if query else idempotency_key,
            kind="graphql",
            step=step,
            exchanges=exchanges,
            timeout=timeout,
        )
        answers.append(response)
        return result_of(response)

    def subscribe(self, request: GraphQLRequest) -> AsyncGenerator[ExecutionResult, None]:
        raise NotImplementedError("a mapping sends queries and mutations, never subscriptions")


def result_of(response: Response) -> ExecutionResult:
    """gql's ExecutionResult of an answer; Answered for a status other than 2xx, NotGraphQL for a 2xx that is
    not a GraphQL answer."""
    if not 200 <= response.status < 300:
        raise Answered(response)
    body = response.json()
    if not response.is_json:
        raise NotGraphQL(response, "not-json")
    if not isinstance(body, dict):
        raise NotGraphQL(response, "not-object")
    errors = body.get("errors")
    if body.get("data") is None and errors in (None, []):
        raise NotGraphQL(response, "no-data")
    return ExecutionResult(data=body.get("data"), errors=errors or None, extensions=body.get("extensions"))


@lru_cache(maxsize=256)
def parsed(document: str) -> DocumentNode:
    """A document parsed once (graphql-core's parser, as gql uses it), keeping its text for the request body."""
    return parse(Source(document, "GraphQL request"))


def source_text(document: DocumentNode) -> str:
    """The text as written in the mapping (gql would print the parsed tree again: same meaning, other text)."""
    if document.loc is not None:
        return document.loc.source.body
    from graphql import print_ast

    return print_ast(document)


@lru_cache(maxsize=256)
def _is_query(text: str, operation: str | None) -> bool:
    return is_query(parsed(text), operation)


def is_query(document: DocumentNode, operation: str | None) -> bool:
    """True when the operation to run is a query (safe to repeat); a mutation or an unclear one is not."""
    operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
    if operation is not None:
        operations = [node for node in operations if node.name is not None and node.name.value == operation]
    return len(operations) == 1 and operations[0].operation == OperationType.QUERY
