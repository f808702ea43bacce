"""What a GraphQL endpoint answered: the HTTP answer, its `data` and `errors`, and the errors in words."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from mapper.run.clients.exchange import Response

Problem = Literal["not-json", "not-object", "no-data"]


@dataclass(frozen=True)
class GraphQLAnswer:
    """An answer to one GraphQL request, whatever its status; `problem` says why a 2xx answer is not a GraphQL
    answer (not JSON, not an object, neither `data` nor `errors`), when it is not one."""

    response: Response
    data: Any = None
    errors: list[Any] = field(default_factory=list)  # as the server sent them
    problem: Problem | None = None

    @property
    def problem_words(self) -> str:
        """What is wrong with a 2xx answer that is not a GraphQL answer, with the start of it (masked)."""
        excerpt = self.response.excerpt(200)
        if self.problem == "not-json":
            return (
                f"the GraphQL endpoint answered {self.response.status} with something that is not JSON: "
                f"{excerpt or 'an empty body'}"
            )
        if self.problem == "not-object":
            return "the GraphQL endpoint answered JSON that is not an object: " + excerpt
        return f"the GraphQL answer has no `data`: {excerpt}"

    @property
    def messages(self) -> list[str]:
        """The errors in words, masked: "Not authorized to read object (at node)"."""
        return [self.response.masker.text(message) for message in error_messages(self.errors)]


def error_messages(errors: Any) -> list[str]:
    """GraphQL `errors` in words: "Not authorized to read object (at node)"."""
    if errors in (None, []):
        return []
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


def error_code(error: Any) -> str | None:
    """An error's code: `extensions.code` (the GraphQL over HTTP convention: Apollo, Shopify's THROTTLED), or a
    top-level `type` (GitHub's NOT_FOUND, RATE_LIMITED)."""
    if not isinstance(error, dict):
        return None
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    code = code if isinstance(code, str) else error.get("type")
    return code if isinstance(code, str) and code else None
