"""Clients for the systems a mapping talks to: HTTP targets, the Scope AR GraphQL API, their credentials."""

from mapper.run.clients.auth import TokenCache
from mapper.run.clients.errors import (
    AuthFailure,
    ClientError,
    ConnectionUnusable,
    GraphQLFailure,
    RequestRejected,
    TransportFailure,
)
from mapper.run.clients.exchange import Exchange, Response
from mapper.run.clients.graphql import GraphQLClient
from mapper.run.clients.http import ConnectionClient

__all__ = [
    "AuthFailure",
    "ClientError",
    "ConnectionClient",
    "ConnectionUnusable",
    "Exchange",
    "GraphQLClient",
    "GraphQLFailure",
    "RequestRejected",
    "Response",
    "TokenCache",
    "TransportFailure",
]
