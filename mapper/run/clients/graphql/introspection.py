"""An API's schema, fetched by introspection through gql and our transport: `wlmap graphql-schema CONNECTION`.

gql sends its introspection query (`get_introspection_query_ast`) and builds the schema from the answer
(`build_client_schema`); the schema is written as SDL (`print_schema`) or as the introspection result (JSON), both
of which `wlmap validate --graphql-schema` reads.
"""

from __future__ import annotations

import json
from typing import Literal

import httpx
from gql import Client
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from graphql import print_schema

from mapper.run.clients.errors import GraphQLFailure
from mapper.run.clients.graphql.answer import error_messages
from mapper.run.clients.graphql.transport import Answered, ConnectionTransport, NotGraphQL
from mapper.run.clients.http import ConnectionClient
from mapper.run.clients.settings import ConnectionSettings


async def fetch_schema(
    connection: ConnectionSettings,
    *,
    form: Literal["sdl", "json"] = "sdl",
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """The API's schema as text; GraphQLFailure (or, without an answer, TransportFailure) saying why not."""
    async with ConnectionClient(connection, transport=transport) as http:
        client = Client(transport=ConnectionTransport(http), execute_timeout=None)
        try:
            await AsyncClientSession(client=client).fetch_schema()
        except TransportQueryError as exc:
            messages = "; ".join(http.masker.text(m) for m in error_messages(exc.errors)) or str(exc)
            raise GraphQLFailure(f"the introspection query failed: {messages}", False) from None
        except Answered as exc:
            what = exc.response.excerpt(200) or "an empty body"
            raise GraphQLFailure(
                f"the GraphQL endpoint answered {exc.response.status}: {what}", False, status=exc.response.status
            ) from None
        except NotGraphQL as exc:
            raise GraphQLFailure(f"the introspection query got no schema: {exc.problem}", False) from None
    assert client.schema is not None and client.introspection is not None
    if form == "json":
        return json.dumps({"data": client.introspection}, indent=2, ensure_ascii=False)
    return print_schema(client.schema)
