"""The names a template or expression may use at one place in a mapping, and why another name is not there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mapper.errors import did_you_mean

RESERVED = frozenset({"event", "headers", "payload", "result", "steps", "env", "item", "index", "status", "body"})
WEBHOOK = {"event": "the webhook event", "headers": "the webhook headers", "payload": "the webhook body"}
RESPONSE = {"status": "the response status", "headers": "the response headers", "body": "the response body"}
ENV = {"env": "environment variables"}


@dataclass
class Scope:
    """The names a template or expression may use at one place in the mapping."""

    names: dict[str, str]  # name → what it is, in words (for "did you mean" and messages)
    steps: dict[str, tuple[str, ...]] = field(default_factory=dict)  # earlier step keys → their capture names
    later_steps: frozenset[str] = frozenset()
    selection: dict[str, Any] | None = None  # the GraphQL query's merged selection (for `result`)
    has_query: bool = False
    place: str = ""  # "trigger", "connection", "capture", ...: words for messages about names that are not here
    this_step: str = ""  # the key of the step being compiled
    selected_by: str = "the query"  # what `selection` is of, in words: the query, or a step's GraphQL document
    # Names this kind of mapping leaves out at this place on purpose (the webhook in a scheduled mapping, the
    # event in the steps of a collecting one), with why and what to use instead.
    absent: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def but(self, **names: str) -> Scope:
        return Scope(
            {**self.names, **names},
            self.steps,
            self.later_steps,
            self.selection,
            self.has_query,
            self.place,
            self.this_step,
            self.selected_by,
            self.absent,
        )


_BY_PLACE = {
    "capture": (
        "`{root}` cannot be used inside `capture`",
        "`capture` reads the response only: `status`, `headers` and `body`",
    ),
    "connection": (
        "`{root}` cannot be used in a connection",
        "a connection is shared by every event: only `env.NAME` may be used in it",
    ),
    "until": (
        "`{root}` cannot be used in `until`",
        "`until` reads the bucket: `items` (each event's extracted values, in order) and `group`",
    ),
    "outcome": (
        "`{root}` cannot be used in an outcome's `when`",
        "`when` reads the answer only: `status`, `headers` and `body`; its `reason` may use the step's names too",
    ),
}
_BY_NAME = {
    "item": ("`item` is only there in a step with `for_each`", "add `for_each:` to the step, or use another name"),
    "index": ("`index` is only there in a step with `for_each`", "add `for_each:` to the step, or use another name"),
    "steps": ("`steps` (values captured by earlier steps) can be used only inside steps", None),
    "env": (
        "`env` cannot be used here",
        "environment variables may be used in connections, query variables and steps",
    ),
    "items": (
        "`items` is only there in the steps of a mapping with `collect:`",
        "add a `collect:` section to run the steps once per bucket of events",
    ),
    "group": ("`group` is only there in the steps of a mapping with `collect:`", None),
    "bucket": ("`bucket` is only there in the steps of a mapping with `collect:`", None),
    "since": (
        "`since` is only there in a mapping with `trigger: {schedule: ...}`",
        "a webhook's time is `event.time`",
    ),
    "until": ("`until` is only there in a mapping with `trigger: {schedule: ...}`", "a webhook's time is `event.time`"),
}
_ROOT_HINTS = {
    "status": "`status`, `headers` and `body` are the response, inside `capture` only",
    "body": "`status`, `headers` and `body` are the response, inside `capture` only",
    "payload": "the webhook body is `payload`",
}


def not_here(root: str, scope: Scope) -> tuple[str, str | None]:
    """Why `root` cannot be used at this place, and what to do instead."""
    if root in scope.absent:
        return scope.absent[root]
    if scope.place in _BY_PLACE:
        message, advice = _BY_PLACE[scope.place]
        return message.format(root=root), advice
    if root == "result" and not scope.has_query:
        return (
            "`result` is only there when the mapping has a `query`",
            "add a `query`, or read the webhook body with `payload.`",
        )
    if root in _BY_NAME:
        return _BY_NAME[root]
    if scope.place == "trigger" and root not in RESERVED and not did_you_mean(root, scope.names):
        return (
            f"`{root}` is not defined in `trigger`",
            "the trigger is checked before the query and `extract`: use `event`, `headers` or `payload`",
        )
    hint = _ROOT_HINTS.get(root) if root in RESERVED else None
    hint = hint or did_you_mean(root, scope.names) or f"names that can be used here: {', '.join(sorted(scope.names))}"
    return f"`{root}` is not defined here", hint
