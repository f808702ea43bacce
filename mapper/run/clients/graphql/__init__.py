"""GraphQL over a connection, through gql with a transport of ours: the Scope AR query and GraphQL steps alike.

client.py       GraphQLClient: one gql client per connection; `execute` (the Scope AR query: its data or a
                GraphQLFailure) and `send` (a step: the whole answer, for the runner to judge)
transport.py    ConnectionTransport: gql's AsyncTransport over our ConnectionClient
answer.py       GraphQLAnswer: what came back (HTTP answer, data, errors), and the errors in words
documents.py    what a document declares (its non-null variables), read once per text
introspection.py  the API's schema by gql's introspection query (`wlmap graphql-schema`)
"""

from mapper.run.clients.graphql.answer import GraphQLAnswer, error_code, error_messages
from mapper.run.clients.graphql.client import GraphQLClient
from mapper.run.clients.graphql.documents import required_variables
from mapper.run.clients.graphql.introspection import fetch_schema

__all__ = ["GraphQLAnswer", "GraphQLClient", "error_code", "error_messages", "fetch_schema", "required_variables"]
