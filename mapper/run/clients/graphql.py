"""GraphQL over a connection: POST the query; `errors`, a missing `data` or no answer become GraphQLFailure.

Why not gql: gql 4.4's `HTTPXAsyncTransport` opens its own httpx client per session, so OAuth2 refresh on 401,
quick retries, the URL checks and exchange recording would all be built a second time around it; it returns a
500 whose body has `errors` exactly like a 200 with `errors` (the status is lost, so "retry a 5xx, never a
query error" cannot be told apart), wraps every network error, timeouts included, as
`TransportConnectionFailed(str(exc))` (often an empty message), and its `TransportServerError` text carries
the full, unmasked URL.
A GraphQL request is one JSON POST, so it goes through `ConnectionClient` like every other request, and
graphql-core (which gql itself uses) tells a query, safe to repeat, from a mutation.

Scope AR answers errors with HTTP 200 (`{"data": {"node": null}, "errors": [{"message": "Not authorized to
read object"}]}`); any `errors` entry is a failure, and only a failed answer (5xx, 429, no answer) is worth
retrying: a query error or a refused permission does not fix itself.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import httpx
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

from mapper.run.clients.auth import TokenCache
from mapper.run.clients.errors import AuthFailure, GraphQLFailure, TransportFailure
from mapper.run.clients.exchange import MAX_ANSWER_BYTES, Exchange, Response
from mapper.run.clients.http import ConnectionClient, Sleep
from mapper.run.clients.settings import ConnectionSettings
from mapper.run.clients.transport import Stack
from mapper.run.masking import Masker

_DENIED = re.compile(r"not authori[sz]ed|unauthori[sz]ed|forbidden|permission|access denied", re.IGNORECASE)


class GraphQLClient:
    """Runs GraphQL documents against one connection's `url` (the Scope AR endpoint)."""

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

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> GraphQLClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def execute(
        self,
        document: str,
        variables: Mapping[str, Any],
        operation: str | None = None,
        *,
        exchanges: list[Exchange],
        step: str | None = None,
    ) -> dict[str, Any]:
        """The `data` of the answer; GraphQLFailure for anything else. `step` names the sender (see `send`)."""
        repeatable = _is_query(document, operation)
        payload: dict[str, Any] = {"query": document, "variables": dict(variables)}
        if operation:
            payload["operationName"] = operation
        try:
            response = await self.http.send(
                "POST", json=payload, idempotent=repeatable, kind="graphql", step=step, exchanges=exchanges
            )
        except AuthFailure as failure:
            raise GraphQLFailure(
                f"the GraphQL query could not be sent: {failure.reason}",
                failure.retryable,
                failure.retry_after,
                denied=not failure.retryable,
            ) from None
        except TransportFailure as failure:
            raise GraphQLFailure(
                f"the GraphQL query got no answer: {failure.reason}",
                failure.retryable,
                failure.retry_after,
                outcome_unknown=failure.outcome_unknown,
            ) from None
        return _data(response)


def _data(response: Response) -> dict[str, Any]:
    status = response.status
    body = response.json()
    messages = [response.masker.text(message) for message in _messages(body)]
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
    if not response.is_json:
        raise GraphQLFailure(
            f"the GraphQL endpoint answered {status} with something that is not JSON: "
            f"{response.excerpt(200) or 'an empty body'}",
            False,
            status=status,
        )
    if not isinstance(body, dict):
        raise GraphQLFailure(
            "the GraphQL endpoint answered JSON that is not an object: " + response.excerpt(200), False, status=status
        )
    if messages:
        raise GraphQLFailure("the GraphQL query failed: " + "; ".join(messages), False, status=status, denied=denied)
    data = body.get("data")
    if not isinstance(data, dict):
        raise GraphQLFailure(f"the GraphQL answer has no `data`: {response.excerpt(200)}", False, status=status)
    return data


def _messages(body: Any) -> list[str]:
    """The `errors` of a GraphQL answer in words: "Not authorized to read object (at node)"."""
    if not isinstance(body, dict) or "errors" not in body or body["errors"] in (None, []):
        return []
    errors = body["errors"]
    if not isinstance(errors, list):
        return [f"`errors` is not a list: {json.dumps(errors)[:200]}"]
    messages = []
    for error in errors:
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
            path = error.get("path")
            if isinstance(path, list) and path:
                message += f" (at {'.'.join(str(part) for part in path)})"
        else:
            message = json.dumps(error)[:200]
        messages.append(message)
    return messages


@lru_cache(maxsize=128)
def _is_query(document: str, operation: str | None) -> bool:
    """True when the operation to run is a query (safe to repeat); a mutation or an unreadable one is not."""
    try:
        tree = parse(document, no_location=True)
    except GraphQLError:
        return False
    operations = [node for node in tree.definitions if isinstance(node, OperationDefinitionNode)]
    if operation is not None:
        operations = [node for node in operations if node.name is not None and node.name.value == operation]
    return len(operations) == 1 and operations[0].operation == OperationType.QUERY
