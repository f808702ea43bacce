"""Document → immutable Plan: every expression compiled, every name a template or expression uses resolved.

`compile_plan` never stops at the first problem: it collects all of them, so `wlmap validate` shows a
file's every mistake in one run. The runner uses the same function, so validation and execution agree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mapper.errors import Location, Problem, Problems, did_you_mean
from mapper.events import EVENT_FIELDS, event_key, type_key
from mapper.language import conversions, expressions, schema
from mapper.language.expressions import Chain, ExpressionSyntaxError, Template
from mapper.language.graphql import check as graphql_check
from mapper.language.plan import (
    Auth,
    Body,
    Connection,
    Csrf,
    Expression,
    Extraction,
    GraphQLQuery,
    Plan,
    RetryPolicy,
    Step,
    Tls,
    Trigger,
    Value,
)
from mapper.language.source import Document, Path

RESERVED = frozenset({"event", "headers", "payload", "result", "steps", "env", "item", "index", "status", "body"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "MERGE", "DELETE"})


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

    def but(self, **names: str) -> Scope:
        return Scope(
            {**self.names, **names},
            self.steps,
            self.later_steps,
            self.selection,
            self.has_query,
            self.place,
            self.this_step,
        )


@dataclass(frozen=True)
class Options:
    env: Mapping[str, str] | None = None  # when given, unset variables are reported (as warnings)
    graphql_schema: Any = None  # a graphql-core GraphQLSchema, when the user gave one


class _Compiler:
    def __init__(self, document: Document, options: Options) -> None:
        self.doc = document
        self.options = options
        self.problems = Problems()
        self.env_names: set[str] = set()
        self.env_locations: dict[str, Location] = {}

    # -- reporting ------------------------------------------------------------------------------------

    def error(
        self,
        path: Path,
        message: str,
        hint: str | None = None,
        key: bool = False,
        location: Location | None = None,
        severity: str = "error",
    ) -> None:
        if self.doc.is_refused(path):
            return  # the YAML reader already said what is wrong with this value
        location = location or self.doc.location(path, key)
        problem = Problem(
            location,
            message,
            path=schema.describe(self.doc, path),
            hint=hint,
            source_line=self.doc.line_text(location.line),
            severity="warning" if severity == "warning" else "error",
        )
        self.problems.add(problem)

    def warning(
        self, path: Path, message: str, hint: str | None = None, location: Location | None = None, key: bool = False
    ) -> None:
        self.error(path, message, hint, key=key, location=location, severity="warning")

    def where(self, path: Path) -> str:
        return " > ".join(schema.describe(self.doc, path))

    # -- expressions ----------------------------------------------------------------------------------

    def query(self, path: Path, source: Any, scope: Scope) -> Expression | None:
        if not isinstance(source, str):
            return None
        try:
            compiled = expressions.compile_query(source)
        except ExpressionSyntaxError as exc:
            self.error(path, exc.message, exc.hint, location=self.doc.location_in_scalar(path, exc.offset, exc.width))
            return None
        for chain in compiled.references:
            self.check_reference(path, source, chain, scope, jmespath=True)
        return Expression(compiled, self.doc.location(path), self.where(path))

    def template(self, path: Path, source: str, scope: Scope, url_path: bool = False) -> Template | None:
        try:
            compiled = expressions.compile_template(source, expressions.PATH if url_path else expressions.TEXT)
        except ExpressionSyntaxError as exc:
            self.error(path, exc.message, exc.hint, location=self.doc.location_in_scalar(path, exc.offset, exc.width))
            return None
        for chain in compiled.references:
            self.check_reference(path, source, chain, scope, jmespath=False)
        return compiled

    def value(self, path: Path, data: Any, scope: Scope, url_path: bool = False) -> Value:
        """A YAML value whose strings are templates → a Value that renders the whole tree."""
        templates: list[Template] = []
        render = self._value_renderer(path, data, scope, url_path, templates)
        return Value(self.doc.location(path), self.where(path), render, tuple(templates))

    def _value_renderer(
        self, path: Path, data: Any, scope: Scope, url_path: bool, templates: list[Template]
    ) -> Callable[[Mapping[str, Any]], Any]:
        if isinstance(data, str) and expressions.is_template(data):
            compiled = self.template(path, data, scope, url_path)
            if compiled is None:
                return lambda scope: None
            templates.append(compiled)
            return compiled.render
        if isinstance(data, dict):
            parts = [
                (key, self._value_renderer((*path, key), item, scope, url_path, templates))
                for key, item in data.items()
            ]
            if all(_is_constant(render) for _, render in parts):
                return _constant(data)
            return lambda scope: {key: render(scope) for key, render in parts}
        if isinstance(data, list):
            items = [self._value_renderer((*path, i), item, scope, url_path, templates) for i, item in enumerate(data)]
            if all(_is_constant(render) for render in items):
                return _constant(data)
            return lambda scope: [render(scope) for render in items]
        return _constant(data)

    # -- references -----------------------------------------------------------------------------------

    def check_reference(self, path: Path, source: str, chain: Chain, scope: Scope, jmespath: bool) -> None:
        root = chain[0]
        at = self._locate_name(path, source, root)
        if jmespath and root in ("null", "true", "false") and root not in scope.names:
            self.error(
                path,
                f"`{root}` is read as a field name here, not as the value {root}",
                f"in JMESPath the value {root} is written with backticks around it: `{root}`",
                location=at,
            )
            return
        if root not in scope.names:
            message, hint = _not_here(root, scope)
            self.error(path, message, hint, location=at)
            return
        if root == "env":
            if len(chain) < 2:
                self.error(path, "use one variable at a time: `env.NAME`", location=at)
                return
            name = chain[1]
            at = self._locate_name(path, source, name)
            self.env_names.add(name)
            self.env_locations.setdefault(name, at)
            if self.options.env is not None and name not in self.options.env:
                self.warning(
                    path, f"environment variable `{name}` is not set", "set it before running the mapping", location=at
                )
        elif root == "event" and len(chain) > 1 and chain[1] not in EVENT_FIELDS:
            self.error(
                path,
                f"the event has no field `{chain[1]}`",
                did_you_mean(chain[1], EVENT_FIELDS) or f"its fields are: {', '.join(EVENT_FIELDS)}",
                location=self._locate_name(path, source, chain[1]),
            )
        elif root == "steps" and len(chain) > 1:
            key = chain[1].replace("-", "_")
            if key == scope.this_step:
                self.error(
                    path,
                    f"step `{chain[1]}` is this step: its captures are there only for the steps after it",
                    "read the response in `capture`, or move this into a later step",
                    location=self._locate_name(path, source, chain[1]),
                )
            elif key in scope.later_steps:
                self.error(
                    path,
                    f"step `{chain[1]}` runs later, so its values are not there yet",
                    "move this step after it, or refer only to earlier steps",
                    location=self._locate_name(path, source, chain[1]),
                )
            elif key not in scope.steps:
                hint = did_you_mean(key, scope.steps) or (
                    f"steps before this one: {', '.join(scope.steps)}"
                    if scope.steps
                    else "this is the first step: no step has run before it"
                )
                self.error(
                    path,
                    f"there is no step `{chain[1]}` before this one",
                    hint,
                    location=self._locate_name(path, source, chain[1]),
                )
            elif len(chain) > 2 and chain[2] not in scope.steps[key]:
                captured = scope.steps[key]
                hint = did_you_mean(chain[2], captured) or (
                    f"it captures: {', '.join(captured)}" if captured else "add a `capture:` to that step"
                )
                self.error(
                    path,
                    f"step `{chain[1]}` captures no `{chain[2]}`",
                    hint,
                    location=self._locate_name(path, source, chain[2]),
                )
        elif root == "result" and scope.selection is not None and len(chain) > 1:
            self._check_selection(path, source, chain, scope.selection)

    def _check_selection(self, path: Path, source: str, chain: Chain, selection: dict[str, Any]) -> None:
        level: dict[str, Any] | None = selection
        parent = "the query"
        for name in chain[1:]:
            if level is None:  # a leaf (a scalar or JSON field such as externalData): anything below is data
                return
            if name not in level:
                hint = did_you_mean(name, level) or (
                    f"{parent} selects: {', '.join(level)}; add `{name}` to the query"
                    if level
                    else "add it to the query"
                )
                self.error(
                    path,
                    f"the query does not select `{name}` under {parent}",
                    hint,
                    location=self._locate_name(path, source, name),
                )
                return
            level = level[name].children
            parent = f"`{name}`"

    def _locate_name(self, path: Path, source: str, name: str) -> Location:
        index = _find_name(source, name)
        if index < 0:
            return self.doc.location(path)
        return self.doc.location_in_scalar(path, index, len(name))

    # -- sections -------------------------------------------------------------------------------------

    def compile(self) -> Plan | None:
        data = self.doc.data
        for problem in schema.check(self.doc):
            self.problems.add(problem)
        if not isinstance(data, dict):
            if data is None:
                self.error((), "the file is empty", "start from an example in mappings/")
            return None
        connections = self.connections(data.get("connections"))
        query, selection = self.graphql(data.get("query"), connections)
        base = Scope(
            {"event": "the webhook event", "headers": "the webhook headers", "payload": "the webhook body"},
            place="trigger",
        )
        trigger = self.trigger(data.get("trigger"), base)
        data_scope = Scope({**base.names}, selection=selection, has_query=query is not None, place="extract")
        if query is not None:
            data_scope.names["result"] = "the GraphQL result"
        extract = self.extract(data.get("extract"), data_scope)
        # Every name under `extract:` is in scope, also one whose expression has a mistake (reported once, there).
        extracted = (
            [name for name in data.get("extract") or {} if isinstance(name, str) and name not in RESERVED]
            if isinstance(data.get("extract"), dict)
            else []
        )
        after = data_scope.but(**{name: "an extracted value" for name in extracted})
        after.place = "data"
        skip_unless = self.query(("skip_unless",), data.get("skip_unless"), after) if "skip_unless" in data else None
        steps = self.steps(data.get("steps"), after, connections)
        if not self.problems.has_errors:  # with errors, some uses could not be read: the warnings could be wrong
            self.unused(data, extract, steps, skip_unless)
            self.unread_secrets(data.get("secrets"))
        if self.problems.has_errors or trigger is None:
            return None
        name = data.get("name")
        return Plan(
            name=name if isinstance(name, str) else "",
            description=str(data.get("description") or ""),
            file=self.doc.file,
            digest=hashlib.sha256(self.doc.text.encode()).hexdigest(),
            trigger=trigger,
            connections=connections,
            query=query,
            extract=tuple(extract),
            skip_unless=skip_unless,
            steps=tuple(steps),
            env_names=frozenset(self.env_names),
            lines=tuple(self.doc.lines),
            secrets=frozenset(name for name in _list(data.get("secrets")) if isinstance(name, str)),
        )

    def unread_secrets(self, names: Any) -> None:
        """A name in `secrets:` that no template reads is most likely a typo, which would leave a secret shown."""
        for index, name in enumerate(_list(names)):
            if isinstance(name, str) and name not in self.env_names:
                hint = did_you_mean(name, sorted(self.env_names)) or "list only variables the mapping reads"
                self.warning(("secrets", index), f"`{name}` is marked secret but no template reads `env.{name}`", hint)

    def trigger(self, data: Any, scope: Scope) -> Trigger | None:
        if not isinstance(data, dict):
            return None
        path: Path = ("trigger",)
        events = [str(e) for e in _list(data.get("events")) if isinstance(e, str | int)]
        types = [str(t) for t in _list(data.get("resource_types")) if isinstance(t, str)]
        topics = [str(t) for t in _list(data.get("topics")) if isinstance(t, str)]
        for index, topic in enumerate(topics):
            if "/" not in topic:
                self.warning(
                    (*path, "topics", index),
                    f"`{topic}` does not look like a topic (`resource/action`)",
                    "topics look like `scenario_session/completed`",
                )
        when = self.query((*path, "when"), data.get("when"), scope) if "when" in data else None
        return Trigger(
            self.doc.location(path),
            frozenset(event_key(e) for e in events),
            frozenset(type_key(t) for t in types),
            frozenset(topics),
            when,
            data.get("allow_unsigned") is True,
        )

    def connections(self, data: Any) -> dict[str, Connection]:
        result: dict[str, Connection] = {}
        if not isinstance(data, dict):
            return result
        env_only = Scope({"env": "environment variables"}, place="connection")
        for name, spec in data.items():
            if not isinstance(spec, dict):
                continue
            path: Path = ("connections", name)
            url = self.url_value((*path, "url"), spec.get("url"), env_only) if "url" in spec else None
            base_url = (
                self.url_value((*path, "base_url"), spec.get("base_url"), env_only) if "base_url" in spec else None
            )
            if url is None and base_url is None and "url" not in spec and "base_url" not in spec:
                self.error(
                    path, f"connection `{name}` needs `base_url` (for steps) or `url` (for the GraphQL query)", key=True
                )
            if "url" in spec and "base_url" in spec:
                self.error(
                    (*path, "base_url"),
                    "a connection has either `url` (GraphQL) or `base_url` (steps), not both",
                    key=True,
                )
            result[name] = Connection(
                name=name,
                location=self.doc.location(path, key=True),
                url=url,
                base_url=base_url,
                headers=self.pairs((*path, "headers"), spec.get("headers"), env_only),
                params=self.pairs((*path, "params"), spec.get("params"), env_only),
                timeout=self.duration((*path, "timeout"), spec.get("timeout"), 30.0),
                tls=self.tls(spec.get("tls")),
                auth=self.auth((*path, "auth"), spec.get("auth"), env_only),
                csrf=self.csrf(spec.get("csrf")),
                idempotency_header=spec.get("idempotency_header")
                if isinstance(spec.get("idempotency_header"), str)
                else None,
                retry=self.retry((*path, "retry"), spec.get("retry")),
            )
        return result

    def url_value(self, path: Path, data: Any, scope: Scope) -> Value | None:
        """A base URL or URL: its scheme and host may come only from `env`, never from event data."""
        if not isinstance(data, str):
            return None
        origin_end = _origin_end(data)
        origin = data[:origin_end]
        if not (origin.startswith(("http://", "https://")) or origin.startswith("{{")):
            self.error(path, "a URL must start with `https://` (or `http://`)")
            return None
        host_error = False
        for match in re.finditer(r"\{\{(.*?)\}\}|\{%(.*?)%\}|\{#", origin, re.DOTALL):
            if match.group(0).startswith("{{"):
                try:
                    refs = expressions.compile_template(match.group(0)).references
                except ExpressionSyntaxError:
                    continue  # a `{{ }}` that fails alone fails in the whole value too, and is reported there
                outside = any(chain[0] != "env" for chain in refs)
            else:
                # A tag cannot be checked alone (`{% if payload.x %}evil{% else %}good{% endif %}` splits the
                # choice over three tags), so before the path only `{{ env.NAME }}` is allowed.
                outside = True
            if outside:
                self.error(
                    path,
                    "the scheme and host of a URL may only come from `env`",
                    "event data must never choose where a request goes; use `path` for the rest",
                    location=self.doc.location_in_scalar(path, match.start(), len(match.group(0))),
                )
                host_error = True
                break  # one message per URL is enough to fix it
        if host_error:
            return None  # said once; the names in it are not worth a second message each
        return self.value(path, data, scope)

    def pairs(self, path: Path, data: Any, scope: Scope, url_path: bool = False) -> tuple[tuple[str, Value], ...]:
        if not isinstance(data, dict):
            return ()
        result = []
        for key, item in data.items():
            if isinstance(item, str | int | float | bool):
                result.append(
                    (
                        str(key),
                        self.value(
                            (*path, key),
                            item
                            if isinstance(item, str)
                            else str(item).lower()
                            if isinstance(item, bool)
                            else str(item),
                            scope,
                            url_path,
                        ),
                    )
                )
        return tuple(result)

    def duration(self, path: Path, data: Any, default: float) -> float:
        if data is None:
            return default
        try:
            return conversions.parse_duration(data)
        except conversions.ConversionError:
            return default  # the schema check has already said what is wrong

    def tls(self, data: Any) -> Tls:
        if not isinstance(data, dict):
            return Tls()
        text = {
            k: data.get(k) if isinstance(data.get(k), str) else None for k in ("ca_file", "client_cert", "client_key")
        }
        return Tls(verify=data.get("verify") is not False, **text)

    def auth(self, path: Path, data: Any, scope: Scope) -> Auth:
        if not isinstance(data, dict) or len(data) != 1:
            return Auth()
        kind, spec = next(iter(data.items()))
        if kind not in ("basic", "bearer", "api_key", "oauth2") or not isinstance(spec, dict):
            return Auth()
        fields = ("username", "password", "token", "value", "token_url", "client_id", "client_secret")
        values = {
            key: self.value((*path, kind, key), spec[key], scope) for key in fields if isinstance(spec.get(key), str)
        }
        scopes = tuple(str(s) for s in spec.get("scopes") or [] if isinstance(s, str))
        return Auth(
            kind=kind,
            values=values,
            name=spec.get("name") if isinstance(spec.get("name"), str) else None,
            placement="query" if spec.get("in") == "query" else "header",
            scopes=scopes,
            audience=spec.get("audience") if isinstance(spec.get("audience"), str) else None,
            client_auth="body" if spec.get("client_auth") == "body" else "basic",
        )

    def csrf(self, data: Any) -> Csrf | None:
        if not isinstance(data, dict):
            return None
        fetch_path = data.get("fetch_path") if isinstance(data.get("fetch_path"), str) else "/"
        header = data.get("header") if isinstance(data.get("header"), str) else "x-csrf-token"
        return Csrf(fetch_path=fetch_path or "/", header=header or "x-csrf-token")

    def retry(self, path: Path, data: Any) -> RetryPolicy:
        if not isinstance(data, dict):
            return RetryPolicy()
        default = RetryPolicy()
        statuses = data.get("statuses")
        schedule = data.get("schedule")
        return RetryPolicy(
            statuses=frozenset(s for s in statuses if isinstance(s, int))
            if isinstance(statuses, list)
            else default.statuses,
            network_errors=data.get("network_errors") is not False,
            schedule=tuple(self.duration((*path, "schedule", i), s, 0.0) for i, s in enumerate(schedule))
            if isinstance(schedule, list)
            else default.schedule,
            jitter=float(data["jitter"]) if isinstance(data.get("jitter"), int | float) else default.jitter,
            max_retry_after=self.duration(
                (*path, "max_retry_after"), data.get("max_retry_after"), default.max_retry_after
            ),
            quick_retries=data["quick_retries"]
            if isinstance(data.get("quick_retries"), int)
            else default.quick_retries,
        )

    def graphql(
        self, data: Any, connections: dict[str, Connection]
    ) -> tuple[GraphQLQuery | None, dict[str, Any] | None]:
        if not isinstance(data, dict):
            return None, None
        path: Path = ("query",)
        name = data.get("connection")
        if isinstance(name, str):
            self.check_connection((*path, "connection"), name, connections, needs="url")
        text = data.get("graphql")
        if not isinstance(text, str):
            return None, None
        operation = data.get("operation") if isinstance(data.get("operation"), str) else None
        variables_data: dict[str, Any] = data["variables"] if isinstance(data.get("variables"), dict) else {}
        checked = graphql_check.check(text, operation, set(variables_data), self.options.graphql_schema)
        for problem in checked.problems:
            if problem.variable is not None:
                at: Path = (*path, "variables", problem.variable)
                self.error(at, problem.message, problem.hint, location=self.doc.location(at, key=True))
                continue
            location = self.doc.location_in_scalar((*path, "graphql"), problem.offset, problem.width)
            message = re.sub(
                r"\bat line (\d+)\b", lambda m: f"on line {self._query_line(text, int(m.group(1)))}", problem.message
            )  # lines of the query text → lines of the file
            self.error((*path, "graphql"), message, problem.hint, location=location)
        scope = Scope(
            {
                "event": "the webhook event",
                "headers": "the webhook headers",
                "payload": "the webhook body",
                "env": "environment variables",
            },
            place="variables",
        )
        variables = self.value((*path, "variables"), variables_data, scope)
        query = GraphQLQuery(
            self.doc.location(path, key=True), name if isinstance(name, str) else "", text, operation, variables
        )
        return query, checked.selection

    def _query_line(self, text: str, line: int) -> int:
        offset = sum(len(x) + 1 for x in text.split("\n")[: max(line - 1, 0)])
        return self.doc.location_in_scalar(("query", "graphql"), offset).line

    def check_connection(self, path: Path, name: str, connections: dict[str, Connection], needs: str) -> None:
        if name not in connections:
            self.error(
                path,
                f"there is no connection `{name}`",
                did_you_mean(name, connections)
                or (f"connections: {', '.join(connections)}" if connections else "add it under `connections:`"),
            )
            return
        connection = connections[name]
        if needs == "url" and connection.url is None and connection.base_url is not None:
            self.error(path, f"connection `{name}` has a `base_url`, but the query needs a GraphQL endpoint `url`")
        if needs == "base_url" and connection.base_url is None and connection.url is not None:
            self.error(
                path,
                f"connection `{name}` is a GraphQL endpoint (`url`); a step with `path` needs a `base_url`",
                "give the step a whole `url`, or use a connection with `base_url`",
            )

    def extract(self, data: Any, scope: Scope) -> list[Extraction]:
        result: list[Extraction] = []
        if not isinstance(data, dict):
            return result
        for name, source in data.items():
            path: Path = ("extract", name)
            if name in RESERVED:
                self.error(path, f"`{name}` is a reserved name", "choose another name for this value", key=True)
                continue
            expression = self.query(path, source, scope)
            if expression is not None:
                result.append(Extraction(name, expression))
        return result

    def steps(self, data: Any, scope: Scope, connections: dict[str, Connection]) -> list[Step]:
        if not isinstance(data, list):
            return []
        keys = [str(s.get("name", "")).replace("-", "_") if isinstance(s, dict) else "" for s in data]
        earlier: dict[str, tuple[str, ...]] = {}
        seen: dict[str, int] = {}
        result = []
        for index, spec in enumerate(data):
            if not isinstance(spec, dict):
                continue
            path: Path = ("steps", index)
            key = keys[index]
            if key and key in seen:
                self.error(
                    (*path, "name"),
                    f"two steps are named `{spec.get('name')}`",
                    f"step names must be unique (`-` and `_` count as the same); the first is step {seen[key] + 1}",
                )
            seen.setdefault(key, index)
            step_scope = Scope(
                {**scope.names, "env": "environment variables", "steps": "earlier steps"},
                dict(earlier),
                frozenset(k for k in keys[index:] if k),
                scope.selection,
                scope.has_query,
                "step",
                key,
            )
            step = self.step(path, spec, step_scope, connections)
            capture = spec.get("capture")
            earlier[key] = tuple(capture) if isinstance(capture, dict) else ()
            if step is not None:
                result.append(step)
        return result

    def step(self, path: Path, spec: dict[str, Any], scope: Scope, connections: dict[str, Connection]) -> Step | None:
        name = spec.get("name")
        method = spec.get("method")
        connection = spec.get("connection")
        if isinstance(connection, str):
            self.check_connection(
                (*path, "connection"), connection, connections, needs="base_url" if "path" in spec else ""
            )
        if "path" in spec and "url" in spec:
            self.error((*path, "url"), "a step has `path` or `url`, not both", key=True)
        elif "path" not in spec and "url" not in spec:
            self.error(
                path,
                "the step needs a `path` (below the connection's `base_url`) or a whole `url`",
                location=self.doc.location((*path, "name")),
            )
        bodies = [k for k in ("json", "form", "body") if k in spec]
        if len(bodies) > 1:
            self.error((*path, bodies[1]), f"a step sends one body: `{bodies[0]}` or `{bodies[1]}`, not both", key=True)
        if bodies and method in ("GET", "HEAD"):
            self.error((*path, bodies[0]), f"a {method} request cannot send a body", key=True)
        if "content_type" in spec and "body" not in spec:
            self.warning(
                (*path, "content_type"),
                "`content_type` applies only to a raw `body`",
                "json and form bodies set their content type themselves",
            )
        when = self.query((*path, "when"), spec.get("when"), scope) if "when" in spec else None
        for_each = self.query((*path, "for_each"), spec.get("for_each"), scope) if "for_each" in spec else None
        inner = (
            scope.but(item="the current item of `for_each`", index="the position of the item") if for_each else scope
        )
        response_scope = Scope(
            {"status": "the response status", "headers": "the response headers", "body": "the response body"},
            place="capture",
        )
        capture = (
            tuple(
                (key, expression)
                for key, source in (spec.get("capture") or {}).items()
                if (expression := self.query((*path, "capture", key), source, response_scope)) is not None
            )
            if isinstance(spec.get("capture"), dict)
            else ()
        )
        url_path = (
            self.value((*path, "path"), spec["path"], inner, url_path=True)
            if isinstance(spec.get("path"), str)
            else None
        )
        if isinstance(spec.get("path"), str) and not spec["path"].startswith(("/", "{{")):
            self.error((*path, "path"), "a path starts with `/`")
        url = self.url_value((*path, "url"), spec.get("url"), inner) if "url" in spec else None
        body = Body()
        if "json" in spec:
            body = Body("json", self.value((*path, "json"), spec["json"], inner))
        elif isinstance(spec.get("form"), dict):
            body = Body("form", self.value((*path, "form"), spec["form"], inner))
        elif isinstance(spec.get("body"), str):
            content_type = spec.get("content_type") if isinstance(spec.get("content_type"), str) else "text/plain"
            body = Body("text", self.value((*path, "body"), spec["body"], inner), content_type)
        expect = spec.get("expect")
        on_status: dict[str, Any] = spec["on_status"] if isinstance(spec.get("on_status"), dict) else {}
        if isinstance(expect, list):
            for status in expect:
                if isinstance(status, int) and str(status) in on_status:
                    self.error(
                        (*path, "on_status", str(status)),
                        f"status {status} is both expected and listed in `on_status`",
                        key=True,
                    )
        if not all(isinstance(x, str) for x in (name, method, connection)):
            return None
        assert isinstance(name, str) and isinstance(method, str) and isinstance(connection, str)
        return Step(
            name=name,
            key=name.replace("-", "_"),
            location=self.doc.location((*path, "name")),
            connection=connection,
            method=method,
            path=url_path,
            url=url,
            params=self.pairs((*path, "params"), spec.get("params"), inner),
            headers=self.pairs((*path, "headers"), spec.get("headers"), inner),
            body=body,
            when=when,
            for_each=for_each,
            capture=capture,
            expect=frozenset(s for s in expect if isinstance(s, int)) if isinstance(expect, list) else None,
            on_status={str(k): v for k, v in on_status.items() if v in ("success", "skip", "retry", "fail")},
            timeout=self.duration((*path, "timeout"), spec.get("timeout"), 0.0) or None,
        )

    def unused(
        self, data: dict[str, Any], extract: list[Extraction], steps: list[Step], skip_unless: Expression | None
    ) -> None:
        """Warn about extracted values and connections nothing uses (usually a typo elsewhere)."""
        used: set[str] = set()
        for expression in [skip_unless, *(s.when for s in steps), *(s.for_each for s in steps)]:
            if expression is not None:
                used.update(chain[0] for chain in expression.query.references)
        for step in steps:
            values = [step.path, step.url, step.body.value, *(v for _, v in step.params), *(v for _, v in step.headers)]
            for value in values:
                if value is not None:
                    used.update(chain[0] for t in value.templates for chain in t.references)
        for extraction in extract:
            if extraction.name not in used:
                self.warning(
                    ("extract", extraction.name),
                    f"`{extraction.name}` is extracted but never used",
                    "use it in a step or in `skip_unless`, or remove it",
                    key=True,
                )
        connections: dict[str, Any] = data["connections"] if isinstance(data.get("connections"), dict) else {}
        query: dict[str, Any] = data["query"] if isinstance(data.get("query"), dict) else {}
        wanted = {s.connection for s in steps} | {query.get("connection")}
        for name in connections or {}:
            if name not in wanted:
                self.warning(
                    ("connections", name),
                    f"connection `{name}` is never used",
                    "use it in a step or in `query`, or remove it",
                    key=True,
                )


def _not_here(root: str, scope: Scope) -> tuple[str, str | None]:
    """Why `root` cannot be used at this place, and what to do instead."""
    if scope.place == "capture":
        return (
            f"`{root}` cannot be used inside `capture`",
            "`capture` reads the response only: `status`, `headers` and `body`",
        )
    if scope.place == "connection":
        return (
            f"`{root}` cannot be used in a connection",
            "a connection is shared by every event: only `env.NAME` may be used in it",
        )
    if root == "result" and not scope.has_query:
        return (
            "`result` is only there when the mapping has a `query`",
            "add a `query`, or read the webhook body with `payload.`",
        )
    if root in ("item", "index"):
        return f"`{root}` is only there in a step with `for_each`", "add `for_each:` to the step, or use another name"
    if root == "steps":
        return "`steps` (values captured by earlier steps) can be used only inside steps", None
    if root == "env":
        return (
            "`env` cannot be used here",
            "environment variables may be used in connections, query variables and steps",
        )
    if scope.place == "trigger" and root not in RESERVED and not did_you_mean(root, scope.names):
        return (
            f"`{root}` is not defined in `trigger`",
            "the trigger is checked before the query and `extract`: use `event`, `headers` or `payload`",
        )
    hint = _ROOT_HINTS.get(root) if root in RESERVED else None
    hint = hint or did_you_mean(root, scope.names) or f"names that can be used here: {', '.join(sorted(scope.names))}"
    return f"`{root}` is not defined here", hint


_ROOT_HINTS = {
    "status": "`status`, `headers` and `body` are the response, inside `capture` only",
    "body": "`status`, `headers` and `body` are the response, inside `capture` only",
    "payload": "the webhook body is `payload`",
}


def _list(value: Any) -> list[Any]:
    """A list from the YAML, or nothing (the schema check reports any other type)."""
    return value if isinstance(value, list) else []


def _find_name(source: str, name: str) -> int:
    match = re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", source)
    if match:
        return match.start()
    return source.find(name)


def _origin_end(url: str) -> int:
    """Where the path starts in a URL template: the first `/` after `://` that is outside `{{ }}`."""
    start = url.find("://")
    index = start + 3 if start >= 0 else 0
    depth = 0
    while index < len(url):
        if url.startswith("{{", index) or url.startswith("{%", index):
            depth += 1
            index += 2
            continue
        if url.startswith("}}", index) or url.startswith("%}", index):
            depth = max(0, depth - 1)
            index += 2
            continue
        if url[index] in "/?#" and depth == 0:
            return index
        index += 1
    return len(url)


def _constant(data: Any) -> Callable[[Mapping[str, Any]], Any]:
    def render(scope: Mapping[str, Any]) -> Any:
        return data

    render.constant = True  # type: ignore[attr-defined]
    return render


def _is_constant(render: Callable[[Mapping[str, Any]], Any]) -> bool:
    return getattr(render, "constant", False) is True


def compile_plan(document: Document, options: Options = Options()) -> tuple[Plan | None, list[Problem]]:
    """Compile a read document. The plan is None when any problem is an error."""
    compiler = _Compiler(document, options)
    plan = compiler.compile()
    return plan, compiler.problems.sorted()
