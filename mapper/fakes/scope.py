"""A fake Scope AR GraphQL API: `node(id:)` answered from the sessions and calls saved in `samples/`.

Every saved GraphQL answer (`samples/graphql/*.json`) and every custom-query webhook (`samples/events/*.json`
whose body is `{"data": {"node": ...}}`) adds its node, by id. A wrong or missing API token gets Scope's own
authorization error: HTTP 200 with `errors` (samples/graphql/not-authorized.json).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from mapper.fakes import graphql
from mapper.fakes.server import Reply, Request, Samples

PATH = "/api/v3/graphql"


class FakeScope:
    def __init__(self, samples: Samples, token: str) -> None:
        self.token = token
        self.refusal = samples.json("graphql/not-authorized.json")
        self.nodes: dict[str, dict[str, Any]] = {}
        for file in samples.files("graphql/*.json") + samples.files("events/*.json"):
            try:
                node = json.loads(file.read_text(encoding="utf-8"))["data"]["node"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                self.nodes.setdefault(node["id"], {"__typename": _type_of(node["id"]), **node})

    def __call__(self, request: Request) -> Reply:
        if request.path != PATH or request.method != "POST":
            return Reply(404, {"errors": [{"message": f"no route {request.method} {request.path}"}]})
        if request.headers.get("authorization") != f"Token token={self.token}":
            return Reply(200, self.refusal)
        try:
            operation = graphql.read(request.json())
        except graphql.QueryError as exc:
            return Reply(200, {"errors": [{"message": str(exc)}]})
        data: dict[str, Any] = {}
        for field in operation.fields:
            if field.name == "__typename":
                data[field.key] = "Query"
            elif field.name == "node" and operation.kind == "query":
                node = self.nodes.get(str(field.arguments.get("id")))
                data[field.key] = graphql.project(node, field.selection, operation.fragments)
            else:
                message = f"Field '{field.name}' doesn't exist on the fake Scope AR API (it answers node(id:) only)"
                return Reply(200, {"errors": [{"message": message}]})
        return Reply(200, {"data": data})


def _type_of(node_id: str) -> str | None:
    """Scope's node ids are base64 of `Type-number` (`U2NlbmFyaW9TZXNzaW9uLTYwMjEx`: ScenarioSession-60211)."""
    try:
        decoded = base64.b64decode(node_id, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    kind, sep, number = decoded.partition("-")
    return kind if sep and kind.isalpha() and number.isdigit() else None
