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
    from mapper.language.compiler.context import Compilation, Options


def check(
    c: Compilation, path: Path, source: str, chain: Chain, scope: Scope, jmespath: bool, occurrence: int = 0
) -> None:
    """Report the first name of `chain` that is not there (the root, the event field, the step, the capture...).

    `occurrence`: how many times the same chain was read before in this expression (to place the problem)."""
    root = chain[0]
    found = _Found(c, path, source, chain, occurrence)
    if jmespath and root in ("null", "true", "false") and root not in scope.names:
        c.error(
            path,
            f"`{root}` is read as a field name here, not as the value {root}",
            f"in JMESPath the value {root} is written with backticks around it: `{root}`",
            location=found.at(0),
        )
    elif root not in scope.names:
        message, hint = not_here(root, scope)
        c.error(path, message, hint, location=found.at(0))
    elif root == "env":
        _environment(c, path, chain, found)
    elif root == "event" and len(chain) > 1 and chain[1] not in EVENT_FIELDS:
        c.error(
            path,
            f"the event has no field `{chain[1]}`",
            did_you_mean(chain[1], EVENT_FIELDS) or f"its fields are: {', '.join(EVENT_FIELDS)}",
            location=found.at(1),
        )
    elif root == "steps" and len(chain) > 1:
        _step(c, path, chain, scope, found)
    elif root == "result" and scope.selection is not None and len(chain) > 1:
        _selected(c, path, chain, scope, found, start=1)
    elif root == "body" and scope.selection is not None and chain[1:2] == ("data",) and len(chain) > 2:
        _selected(c, path, chain, scope, found, start=2)  # a GraphQL step's answer: `body.data.<selected>`


def unset_message(name: str) -> str:
    """The warning for a variable the mapping reads and the environment lacks (the service groups them by it)."""
    return f"environment variable `{name}` is not set"


UNSET_HINT = "set it before running the mapping"


def _environment(c: Compilation, path: Path, chain: Chain, found: _Found) -> None:
    if len(chain) < 2:
        c.error(path, "use one variable at a time: `env.NAME`", location=found.at(0))
        return
    name = chain[1]
    at = found.at(1)
    c.env_names.add(name)
    c.env_locations.setdefault(name, at)
    if c.options.env is not None and name not in c.options.env:
        c.warning(path, unset_message(name), _unset_hint(name, c.options), location=at)


def _unset_hint(name: str, options: Options) -> str:
    """A typo shows as a name no other mapping reads, a letter or two away from one they do ("SAP_PASWORD")."""
    others = options.env_names_elsewhere
    close = sorted(n for n in others if n != name and _edits(name, n) <= 2) if name not in others else []
    env = options.env or {}
    if any(n in env for n in close):
        return f"did you mean `{next(n for n in close if n in env)}`?"
    if close:
        return f"another mapping reads `{close[0]}`: is one of the two misspelt?"
    return UNSET_HINT


def _edits(a: str, b: str) -> int:
    """The Levenshtein distance of two short names (insertions, deletions and changes of one letter)."""
    if abs(len(a) - len(b)) > 2:
        return 3
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _step(c: Compilation, path: Path, chain: Chain, scope: Scope, found: _Found) -> None:
    """`steps.NAME.CAPTURE`: an earlier step, and a value it captures."""
    key = chain[1].replace("-", "_")
    at = found.at(1)
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
            location=found.at(2),
        )


def _selected(c: Compilation, path: Path, chain: Chain, scope: Scope, found: _Found, start: int) -> None:
    """`result.a.b` (or a GraphQL step's `body.data.a.b`): each name selected by the GraphQL document."""
    level: dict[str, Any] | None = scope.selection
    parent = scope.selected_by
    for index, name in enumerate(chain[start:], start):
        if level is None:  # a leaf (a scalar or JSON field such as externalData): anything below is data
            return
        if name not in level:
            hint = did_you_mean(name, level) or (
                f"{parent} selects: {', '.join(level)}; add `{name}` to {scope.selected_by}"
                if level
                else f"add it to {scope.selected_by}"
            )
            c.error(
                path,
                f"{scope.selected_by} does not select `{name}` under {parent}",
                hint,
                location=found.at(index),
            )
            return
        level = level[name].children
        parent = f"`{name}`"


class _Found:
    """Where the parts of one chain are written inside the expression at `path` (its `occurrence`-th use)."""

    def __init__(self, c: Compilation, path: Path, source: str, chain: Chain, occurrence: int) -> None:
        self.c, self.path, self.source, self.chain, self.occurrence = c, path, source, chain, occurrence

    def at(self, index: int) -> Location:
        """Part `index`, found as part of the whole chain: `{{ steps.a.id }} {{ steps.b.id }}` places a problem
        with b's `id` on the second `id`; a chain read twice is placed at the use being checked."""
        name = self.chain[index]
        spots = list(_chain_pattern(self.chain[: index + 1]).finditer(self.source))
        if spots:
            spot = spots[min(self.occurrence, len(spots) - 1)]
            offset = spot.start("last") + spot.group("last").index(name)
            return self.c.doc.location_in_scalar(self.path, offset, len(name))
        match = re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", self.source)
        offset = match.start() if match else self.source.find(name)
        if offset < 0:
            return self.c.doc.location(self.path)
        return self.c.doc.location_in_scalar(self.path, offset, len(name))


def _chain_pattern(chain: Chain) -> re.Pattern[str]:
    """`a.b.c` as written in JMESPath or Jinja: `a.b`, `a . "b"`, `a['b']`, `a["b"]`; the last part is `last`."""
    parts = []
    for position, name in enumerate(chain):
        quoted = re.escape(name)
        if position == 0:
            part = f'(?:(?<![\\w.-]){quoted}(?![\\w-])|"{quoted}")'
        else:
            part = f"""(?:\\s*\\.\\s*(?:{quoted}(?![\\w-])|"{quoted}")|\\s*\\[\\s*(?:'{quoted}'|"{quoted}")\\s*\\])"""
        parts.append(f"(?P<last>{part})" if position == len(chain) - 1 else part)
    return re.compile("".join(parts))


def locate(c: Compilation, path: Path, source: str, name: str) -> Location:
    """Where `name` is written inside the expression at `path` (the whole value if it cannot be found)."""
    match = re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", source)
    index = match.start() if match else source.find(name)
    if index < 0:
        return c.doc.location(path)
    return c.doc.location_in_scalar(path, index, len(name))
