"""What the clients raise when a request cannot be made or gets no usable answer.

    ClientError                 anything a client could not do
    ├── ConnectionUnusable      the connection's settings cannot be used (bad base_url, missing CA file, env)
    ├── RequestRejected         refused before sending: it would leave the connection's host, or carries CR/LF
    └── TransportFailure        no usable answer: reason, retryable, retry_after, outcome_unknown
        ├── AuthFailure         credentials could not be obtained (OAuth2 token, SAP CSRF token)
        └── GraphQLFailure      the GraphQL endpoint answered with errors, without data, or not at all

A status code the server answered with is not an error here: `ConnectionClient.send` returns it, and the
runner decides what it means. Every message is already masked.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base class: a request that was not made, or made without a usable answer."""


class ConnectionUnusable(ClientError):
    """The connection's settings (after reading env) cannot make a client."""


class RequestRejected(ClientError):
    """The request was refused before anything was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransportFailure(ClientError):
    """No usable answer.

    `retryable`: trying again later may succeed. `retry_after`: seconds the server asked us to wait.
    `outcome_unknown`: the request was sent and no answer came, so the target may have applied it.
    """

    def __init__(
        self, reason: str, retryable: bool, retry_after: float | None = None, *, outcome_unknown: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class AuthFailure(TransportFailure):
    """Credentials could not be obtained: the token endpoint or the CSRF fetch failed."""


class GraphQLFailure(TransportFailure):
    """The GraphQL query failed. `denied`: the server said the credentials may not read this."""

    def __init__(
        self,
        message: str,
        retryable: bool,
        retry_after: float | None = None,
        *,
        status: int | None = None,
        denied: bool = False,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, retryable, retry_after, outcome_unknown=outcome_unknown)
        self.message = message
        self.status = status
        self.denied = denied
