"""Clients for the systems a mapping talks to: HTTP targets, the Scope AR GraphQL API, their credentials."""

from mapper.clients.auth import TokenCache
from mapper.clients.errors import (
    AuthFailure,
    ClientError,
    ConnectionUnusable,
    GraphQLFailure,
    RequestRejected,
    TransportFailure,
)
from mapper.clients.exchange import Exchange, Response
from mapper.clients.graphql import GraphQLClient
from mapper.clients.http import ConnectionClient

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
