"""Every name an expression or template reads, resolved at compile time: a typo is a located error, not a null."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mapper.errors import Location, did_you_mean
from mapper.events import EVENT_FIELDS
from mapper.language.compiler.scope import Scope, not_here
from mapper.language.expressions import Chain
from mapper.language.source import Path

if TYPE_CHECKING:
    from mapper.language.compiler.context import Compilation


def check(c: Compilation, path: Path, source: str, chain: Chain, scope: Scope, jmespath: bool) -> None:
    """Report the first name of `chain` that is not there (the root, the event field, the step, the capture...)."""
    root = chain[0]
    at = locate(c, path, source, root)
    if jmespath and root in ("null", "true", "false") and root not in scope.names:
        c.error(
            path,
            f"`{root}` is read as a field name here, not as the value {root}",
            f"in JMESPath the value {root} is written with backticks around it: `{root}`",
            location=at,
        )
    elif root not in scope.names:
        message, hint = not_here(root, scope)
        c.error(path, message, hint, location=at)
    elif root == "env":
        _environment(c, path, source, chain, at)
    elif root == "event" and len(chain) > 1 and chain[1] not in EVENT_FIELDS:
        c.error(
            path,
            f"the event has no field `{chain[1]}`",
            did_you_mean(chain[1], EVENT_FIELDS) or f"its fields are: {', '.join(EVENT_FIELDS)}",
            location=locate(c, path, source, chain[1]),
        )
    elif root == "steps" and len(chain) > 1:
        _step(c, path, source, chain, scope)
    elif root == "result" and scope.selection is not None and len(chain) > 1:
        _selected(c, path, source, chain, scope.selection)


def _environment(c: Compilation, path: Path, source: str, chain: Chain, at: Location) -> None:
    if len(chain) < 2:
        c.error(path, "use one variable at a time: `env.NAME`", location=at)
        return
    name = chain[1]
    at = locate(c, path, source, name)
    c.env_names.add(name)
    c.env_locations.setdefault(name, at)
    if c.options.env is not None and name not in c.options.env:
        c.warning(path, f"environment variable `{name}` is not set", "set it before running the mapping", location=at)


def _step(c: Compilation, path: Path, source: str, chain: Chain, scope: Scope) -> None:
    """`steps.NAME.CAPTURE`: an earlier step, and a value it captures."""
    key = chain[1].replace("-", "_")
    at = locate(c, path, source, chain[1])
    if key == scope.this_step:
        c.error(
            path,
            f"step `{chain[1]}` is this step: its captures are there only for the steps after it",
            "read the response in `capture`, or move this into a later step",
            location=at,
        )
    elif key in scope.later_steps:
        c.error(
            path,
            f"step `{chain[1]}` runs later, so its values are not there yet",
            "move this step after it, or refer only to earlier steps",
            location=at,
        )
    elif key not in scope.steps:
        hint = did_you_mean(key, scope.steps) or (
            f"steps before this one: {', '.join(scope.steps)}"
            if scope.steps
            else "this is the first step: no step has run before it"
        )
        c.error(path, f"there is no step `{chain[1]}` before this one", hint, location=at)
    elif len(chain) > 2 and chain[2] not in scope.steps[key]:
        captured = scope.steps[key]
        hint = did_you_mean(chain[2], captured) or (
            f"it captures: {', '.join(captured)}" if captured else "add a `capture:` to that step"
        )
        c.error(
            path,
            f"step `{chain[1]}` captures no `{chain[2]}`",
            hint,
            location=locate(c, path, source, chain[2]),
        )


def _selected(c: Compilation, path: Path, source: str, chain: Chain, selection: dict[str, Any]) -> None:
    """`result.a.b`: each name selected by the GraphQL query."""
    level: dict[str, Any] | None = selection
    parent = "the query"
    for name in chain[1:]:
        if level is None:  # a leaf (a scalar or JSON field such as externalData): anything below is data
            return
        if name not in level:
            hint = did_you_mean(name, level) or (
                f"{parent} selects: {', '.join(level)}; add `{name}` to the query" if level else "add it to the query"
            )
            c.error(
                path,
                f"the query does not select `{name}` under {parent}",
                hint,
                location=locate(c, path, source, name),
            )
            return
        level = level[name].children
        parent = f"`{name}`"


def locate(c: Compilation, path: Path, source: str, name: str) -> Location:
    """Where `name` is written inside the expression at `path` (the whole value if it cannot be found)."""
    match = re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", source)
    index = match.start() if match else source.find(name)
    if index < 0:
        return c.doc.location(path)
    return c.doc.location_in_scalar(path, index, len(name))
