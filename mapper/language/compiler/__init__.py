"""Document → immutable Plan: every expression compiled, every name a template or expression uses resolved.

`compile_plan` never stops at the first problem: it collects all of them, so `wlmap validate` shows a
file's every mistake in one run. The runner uses the same function, so validation and execution agree.
It expects a document the schema check has seen (`loader` runs read → schema check → compile).

The sections, in the order their names come into scope: `connections`, `query`, `trigger`, `extract` (here),
`skip_unless`, `steps`; `scope` says which names each place may use, `references` resolves them. `link`
comes last: it checks what all the others read from `externalData`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mapper.errors import Problem, did_you_mean
from mapper.language.compiler.collect import collect as compile_collect
from mapper.language.compiler.collect import steps_scope
from mapper.language.compiler.connections import connections as compile_connections
from mapper.language.compiler.context import DEFAULTS, Compilation, Options
from mapper.language.compiler.link import link as compile_link
from mapper.language.compiler.query import query as compile_query
from mapper.language.compiler.scope import RESERVED, WEBHOOK, Scope
from mapper.language.compiler.steps import steps as compile_steps
from mapper.language.compiler.trigger import trigger as compile_trigger
from mapper.language.plan import Expression, Extraction, Plan, Step
from mapper.language.source import Document, Path

__all__ = ["Options", "compile_plan"]


def compile_plan(
    document: Document, options: Options = DEFAULTS, shape_errors: bool = False
) -> tuple[Plan | None, list[Problem]]:
    """Compile a read document. The plan is None when any problem is an error.

    `shape_errors`: the schema check found errors in this document; then some uses of names could not be
    read, so the warnings about unused names are left out (they could be wrong), and there is no plan.
    """
    c = Compilation(document, options)
    plan = _compile(c, shape_errors)
    return plan, c.problems.sorted()


def _compile(c: Compilation, shape_errors: bool) -> Plan | None:
    data = c.doc.data
    if not isinstance(data, dict):
        if data is None:
            c.error((), "the file is empty", "start from an example in mappings/")
        return None
    connections = compile_connections(c, data.get("connections"))
    given = _given(data)
    query, selection = compile_query(c, data.get("query"), connections, given)
    trigger = compile_trigger(c, data.get("trigger"), Scope(dict(WEBHOOK), place="trigger"))
    data_scope = Scope(
        dict(given.names), selection=selection, has_query=query is not None, place="extract", absent=given.absent
    )
    if query is not None:
        data_scope.names["result"] = "the GraphQL result"
    extract = _extract(c, data.get("extract"), data_scope)
    # Every name under `extract:` is in scope, also one whose expression has a mistake (reported once, there).
    extracted = (
        [n for n in data["extract"] if isinstance(n, str) and n not in RESERVED]
        if isinstance(data.get("extract"), dict)
        else []
    )
    after = data_scope.but(**{name: "an extracted value" for name in extracted})
    after.place = "data"
    skip_unless = c.query(("skip_unless",), data.get("skip_unless"), after) if "skip_unless" in data else None
    collect = compile_collect(c, data.get("collect"), after, extracted) if "collect" in data else None
    if collect is not None and given is SCHEDULED:
        c.error(("collect",), "a scheduled mapping runs on no webhook, so it has no events to collect", key=True)
    steps_names = steps_scope(extracted, [*given.names, "result"]) if collect is not None else after
    steps = compile_steps(c, data.get("steps"), steps_names, connections)
    link = compile_link(c, data.get("link"), shape_errors)
    if shape_errors or c.problems.has_errors:
        return None
    _unused(c, data, extract if collect is None else [], steps, skip_unless)
    _unread_secrets(c, data.get("secrets"))
    if trigger is None:
        return None
    name = data.get("name")
    return Plan(
        name=name if isinstance(name, str) else "",
        description=str(data.get("description") or ""),
        file=c.doc.file,
        digest=hashlib.sha256(c.doc.text.encode()).hexdigest(),
        trigger=trigger,
        connections=connections,
        query=query,
        extract=tuple(extract),
        skip_unless=skip_unless,
        steps=tuple(steps),
        env_names=frozenset(c.env_names),
        lines=tuple(c.doc.lines),
        link=link,
        secrets=frozenset(n for n in data.get("secrets") or () if isinstance(n, str)),
        collect=collect,
    )


# A scheduled mapping has no webhook: its query, `extract` and steps start from the run's times instead.
SCHEDULED = Scope(
    {"since": "the time of the previous run (ISO 8601 UTC)", "until": "this run's time (ISO 8601 UTC)"},
    absent={
        name: (
            f"`{name}` is not there in a scheduled mapping: it runs at its times, with no webhook",
            "use `since` and `until` (the time of the previous run and of this one)",
        )
        for name in WEBHOOK
    },
)


def _given(data: dict[str, Any]) -> Scope:
    """The names a run starts from: the webhook's, or in a scheduled mapping the run's times."""
    trigger = data.get("trigger")
    return SCHEDULED if isinstance(trigger, dict) and "schedule" in trigger else Scope(dict(WEBHOOK))


def _extract(c: Compilation, data: Any, scope: Scope) -> list[Extraction]:
    result: list[Extraction] = []
    if not isinstance(data, dict):
        return result
    for name, source in data.items():
        path: Path = ("extract", name)
        if name in RESERVED or name in scope.names:
            c.error(path, f"`{name}` is a reserved name", "choose another name for this value", key=True)
            continue
        expression = c.query(path, source, scope)
        if expression is not None:
            result.append(Extraction(name, expression))
    return result


def _unused(
    c: Compilation, data: dict[str, Any], extract: list[Extraction], steps: list[Step], skip_unless: Expression | None
) -> None:
    """Warn about extracted values and connections nothing uses (usually a typo elsewhere)."""
    used: set[str] = set()
    for expression in [skip_unless, *(s.when for s in steps), *(s.for_each for s in steps)]:
        if expression is not None:
            used.update(chain[0] for chain in expression.query.references)
    for step in steps:
        values = [step.path, step.url, step.body.value, *(v for _, v in step.params), *(v for _, v in step.headers)]
        values += [step.graphql.variables if step.graphql else None, *(rule.reason for rule in step.outcomes)]
        for value in values:
            if value is not None:
                used.update(chain[0] for t in value.templates for chain in t.references)
    for extraction in extract:
        if extraction.name not in used:
            c.warning(
                ("extract", extraction.name),
                f"`{extraction.name}` is extracted but never used",
                "use it in a step or in `skip_unless`, or remove it",
                key=True,
            )
    connections: dict[str, Any] = data["connections"] if isinstance(data.get("connections"), dict) else {}
    query: dict[str, Any] = data["query"] if isinstance(data.get("query"), dict) else {}
    wanted = {s.connection for s in steps} | {query.get("connection")}
    for name in connections:
        if name not in wanted:
            c.warning(
                ("connections", name),
                f"connection `{name}` is never used",
                "use it in a step or in `query`, or remove it",
                key=True,
            )


def _unread_secrets(c: Compilation, names: Any) -> None:
    """A name in `secrets:` that no template reads is most likely a typo, which would leave a secret shown."""
    for index, name in enumerate(names if isinstance(names, list) else []):
        if isinstance(name, str) and name not in c.env_names:
            hint = did_you_mean(name, sorted(c.env_names)) or "list only variables the mapping reads"
            c.warning(("secrets", index), f"`{name}` is marked secret but no template reads `env.{name}`", hint)
