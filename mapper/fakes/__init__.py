"""Fake systems on 127.0.0.1 for `wlmap demo`: Scope AR's GraphQL API and the targets of the shipped mappings.

Each fake answers from the saved answers in `samples/` and checks what a real system would refuse (credentials,
SAP's CSRF token and If-Match), so the demo runs the shipped mappings end to end with nothing leaving the
machine. This room imports nothing of wlmap's: only the standard library, and graphql-core to read queries.
"""

from mapper.fakes.scope import FakeScope
from mapper.fakes.server import FakeServer, Reply, Request, Samples
from mapper.fakes.targets import FakeAssetRegister, FakeMaximo, FakeSalesforce, FakeSap, FakeServiceNow

__all__ = [
    "FakeAssetRegister",
    "FakeMaximo",
    "FakeSalesforce",
    "FakeSap",
    "FakeScope",
    "FakeServer",
    "FakeServiceNow",
    "Reply",
    "Request",
    "Samples",
]
