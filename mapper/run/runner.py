"""Plan + event → RunResult: query, extract, skip_unless, then the steps; effects only through the clients.

The runner decides, for every failure, whether it is *retryable* (it can succeed later: network, timeout,
5xx, 429, a step's `retry` outcome) or *permanent* (`dead`: a 4xx, a template that fails on this event's
data, a GraphQL authorization error) and says why, naming the step and its line in the mapping.
Every run leaves a trace (see `trace.py`) with secrets masked. A step's request is rendered and sent, and its
failure put in words, by `sending`; `stop` holds how a run ends early with a located reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from mapper.events import Event
from mapper.language.expressions import EvaluationError
from mapper.language.plan import LINK_KEY_ENV, Connection, Plan, Step
from mapper.links import received, signing
from mapper.run import answers, connections, secrets, sending
from mapper.run.buckets import Bucket, NotCollected, Window, item_from
from mapper.run.clients.auth import TokenCache
from mapper.run.clients.errors import ConnectionUnusable, GraphQLFailure, RequestRejected, TransportFailure
from mapper.run.clients.graphql import GraphQLAnswer, GraphQLClient, required_variables
from mapper.run.clients.http import ConnectionClient
from mapper.run.clients.transport import Stack
from mapper.run.masking import Masker
from mapper.run.matching import truthy, webhook_scope
from mapper.run.outcome import RunResult, Status
from mapper.run.stop import Stop, at, cut, evaluate, render
from mapper.run.trace import Trace

C = TypeVar("C", ConnectionClient, GraphQLClient)
_ENDS: dict[str, Status] = {"skip": "skipped", "retry": "retry", "fail": "dead"}  # a step's outcome → the run's


class Runner:
    """Runs plans. One per process: it keeps HTTP connection pools and OAuth tokens across events."""

    def __init__(
        self, env: Mapping[str, str], transport: httpx.AsyncBaseTransport | None = None, *, stack: Stack = "aiohttp"
    ) -> None:
        self.env = dict(env)
        self.transport = transport
        self.stack: Stack = stack  # the HTTP client stack when no transport is given (see clients.transport)
        self._http: dict[tuple[str, str, str], ConnectionClient] = {}
        self._graphql: dict[tuple[str, str, str], GraphQLClient] = {}
        self._maskers: dict[tuple[str, str], Masker] = {}
        self.tokens = TokenCache()  # OAuth2 tokens, shared by every event and connection of this runner

    async def aclose(self) -> None:
        for client in self._http.values():
            await client.aclose()
        for graphql in self._graphql.values():
            await graphql.aclose()
        self._http.clear()
        self._graphql.clear()

    def masker(self, plan: Plan) -> Masker:
        """The one masker of this plan version: its clients teach it what they learn (tokens, cookies), and
        traces and reasons are masked with it."""
        key = (plan.name, plan.digest)
        if key not in self._maskers:
            self._maskers[key] = secrets.masker_for(plan, self.env)
        return self._maskers[key]

    def _client(self, plan: Plan, connection: Connection) -> ConnectionClient:
        return self._cached(self._http, ConnectionClient, plan, connection)

    def _graphql_client(self, plan: Plan, connection: Connection) -> GraphQLClient:
        return self._cached(self._graphql, GraphQLClient, plan, connection)

    def _cached(
        self, cache: dict[tuple[str, str, str], C], make: Callable[..., C], plan: Plan, connection: Connection
    ) -> C:
        """The client of this plan version's connection, made on first use and kept (pools, tokens)."""
        key = (plan.name, plan.digest, connection.name)
        if key not in cache:
            # Every client of the plan shares its masker: a client cuts excerpts, so it must know every secret
            # of the plan (a token a step puts in a header or body) to never leave half of one at a cut.
            settings = connections.resolve(connection, self.env, secrets.secret_names(plan))
            masker = self.masker(plan)
            cache[key] = make(
                settings, transport=self.transport, token_cache=self.tokens, stack=self.stack, masker=masker
            )
        return cache[key]

    async def run(
        self,
        plan: Plan,
        event: Event,
        *,
        idempotency_key: str = "",
        attempt: int = 1,
        bucket: Bucket | None = None,
        window: Window | None = None,
    ) -> RunResult:
        """Run the plan for one event; a collecting plan's event is collected (its item is in the result's
        `collected`), its closed `bucket` runs the steps; a scheduled plan runs for its `window`."""
        trace = Trace(plan, event, attempt)
        collected = None
        try:
            if plan.collect is not None and bucket is None:
                collected = await self._collect(plan, event, trace)
            else:
                await self._run(plan, event, trace, idempotency_key or _default_key(event, plan), bucket, window)
        except Stop as stop:
            return trace.finish(stop.status, stop.reason, stop.step, stop.retry_after, self.masker(plan))
        if collected is not None:
            done = trace.finish(
                "done", f"collected into the bucket of group {collected.group_text[:80]}", None, None, self.masker(plan)
            )
            return dataclasses.replace(done, collected=collected)
        return trace.finish("done", "every step succeeded", None, None, self.masker(plan))

    async def _collect(self, plan: Plan, event: Event, trace: Trace) -> Any:
        """The event's item for its bucket: query, extract and skip_unless as usual, then `group_by`."""
        scope: dict[str, Any] = webhook_scope(event)
        values = await self._prepare(plan, scope, trace)
        try:
            collected = item_from(plan, values, scope)
        except EvaluationError as exc:
            raise Stop(
                "dead", f"collect ({at(plan, plan.collect.location.line if plan.collect else 0)}): {exc}"
            ) from None
        except NotCollected as exc:
            raise Stop("dead", f"collect: {exc}") from None
        trace.stage("collect", group=collected.group, distinct=collected.distinct, item=collected.value)
        return collected

    async def _run(
        self, plan: Plan, event: Event, trace: Trace, key: str, bucket: Bucket | None, window: Window | None
    ) -> None:
        if bucket is not None:
            scope = bucket.scope()
            trace.stage(
                "bucket",
                id=bucket.id,
                group=bucket.group,
                count=len(bucket.items),
                reason=bucket.reason,
                items=bucket.items,
            )
        else:
            scope = window.scope() if window is not None else webhook_scope(event)
            if window is not None:
                trace.stage("schedule", **scope, missed=window.missed)
            await self._prepare(plan, scope, trace)
        scope["env"] = self.env
        scope["steps"] = {}
        for step in plan.steps:
            await self._step(plan, step, scope, trace, key)

    async def _prepare(self, plan: Plan, scope: dict[str, Any], trace: Trace) -> dict[str, Any]:
        """The query, the link's signature, `extract` and `skip_unless`: the extracted values join `scope`."""
        if plan.query is not None:
            scope["result"] = await self._query(plan, scope, trace)
        if plan.link is not None and plan.link.signed:
            self._check_link(plan, scope, trace)
        values = {}
        for extraction in plan.extract:
            values[extraction.name] = evaluate(plan, extraction.expression, scope)
        trace.stage("extract", values=values)
        scope.update(values)
        if plan.skip_unless is not None:
            passed = truthy(evaluate(plan, plan.skip_unless, scope))
            trace.stage("skip_unless", expression=plan.skip_unless.source, passed=passed)
            if not passed:
                masker = self.masker(plan)
                shown = ", ".join(f"{k}={cut(masker, json.dumps(v, default=str), 60)}" for k, v in values.items())
                raise Stop("skipped", f"skip_unless `{plan.skip_unless.source}` is false ({shown})")
        return values

    def _check_link(self, plan: Plan, scope: dict[str, Any], trace: Trace) -> None:
        """A signed link: skip an event whose externalData was edited by hand (another incident number typed
        into the URL) rather than write onto the wrong record."""
        assert plan.link is not None
        keys = signing.keys_from(self.env.get(LINK_KEY_ENV))
        if not keys:
            raise Stop("dead", f"the mapping requires signed deep links, and {LINK_KEY_ENV} is not set")
        problem = received.signature_problem(plan.link, scope, keys)
        trace.stage("link", signed=True, verified=problem is None)
        if problem is not None:
            raise Stop("skipped", problem)

    async def _query(self, plan: Plan, scope: dict[str, Any], trace: Trace) -> Any:
        query = plan.query
        assert query is not None
        variables = render(plan, query.variables, {**scope, "env": self.env})
        _check_required(plan, variables, scope["event"])
        connection = plan.connections[query.connection]
        exchanges: list[Any] = []
        stage = trace.stage("query", connection=connection.name, variables=variables, exchanges=exchanges)
        try:
            data = await self._graphql_client(plan, connection).execute(
                query.document, variables, query.operation, exchanges=exchanges, step="query"
            )
        except GraphQLFailure as exc:
            raise Stop(
                "retry" if exc.retryable else "dead", f"query ({at(plan, query.location.line)}): {exc.message}"
            ) from None
        except TransportFailure as exc:
            raise Stop(
                "retry" if exc.retryable else "dead",
                f"the GraphQL query could not be sent: {exc.reason}",
                retry_after=exc.retry_after,
            ) from None
        except (RequestRejected, ConnectionUnusable) as exc:
            raise Stop("dead", f"the GraphQL query was not sent: {exc}") from None
        stage["data"] = data
        return data

    async def _step(self, plan: Plan, step: Step, scope: dict[str, Any], trace: Trace, key: str) -> None:
        where = f"step `{step.name}` ({at(plan, step.location.line)})"
        captures: dict[str, Any] = {name: None for name, _ in step.capture}
        scope["steps"][step.key] = scope["steps"][step.name] = captures
        if step.when is not None and not truthy(evaluate(plan, step.when, scope, where)):
            trace.stage("step", name=step.name, ran=False, reason=f"when `{step.when.source}` is false")
            return
        if step.for_each is None:
            items: list[tuple[int | None, Any]] = [(None, None)]
        else:
            listed = evaluate(plan, step.for_each, scope, where)
            if listed is None:
                listed = []
            if not isinstance(listed, list):
                raise Stop(
                    "dead",
                    f"{where}: for_each `{step.for_each.source}` gave {type(listed).__name__}, not a list",
                    step.name,
                )
            items = list(enumerate(listed))
            for name in captures:
                captures[name] = []
        for index, item in items:
            local = scope if index is None else {**scope, "item": item, "index": index}
            captured = await self._request(plan, step, local, trace, key, index, where)
            for name, value in captured.items():
                if index is None:
                    captures[name] = value
                else:
                    captures[name].append(value)

    async def _request(
        self, plan: Plan, step: Step, scope: dict[str, Any], trace: Trace, key: str, index: int | None, where: str
    ) -> dict[str, Any]:
        connection = plan.connections[step.connection]
        exchanges: list[Any] = []
        stage = trace.stage("step", name=step.name, ran=True, item=index, exchanges=exchanges)
        step_key = hashlib.sha256(f"{key}|{step.name}|{index}".encode()).hexdigest()[:32]
        answer: GraphQLAnswer | None = None
        try:
            if step.graphql is not None:
                graphql = self._graphql_client(plan, connection)
                answer = await sending.send_graphql(plan, step, graphql, scope, exchanges, step_key, where)
                response = answer.response
            else:
                http = self._client(plan, connection)
                response = await sending.send_http(plan, step, http, scope, exchanges, step_key, where)
        except TransportFailure as exc:
            raise Stop(
                "retry" if exc.retryable else "dead", f"{where}: {exc.reason}", step.name, exc.retry_after
            ) from None
        except (RequestRejected, ConnectionUnusable) as exc:
            raise Stop("dead", f"{where}: request not sent: {exc}", step.name) from None
        except (UnicodeError, TypeError, ValueError) as exc:  # e.g. a lone surrogate from the data in a JSON body
            raise Stop("dead", f"{where}: request not sent: the body cannot be encoded ({exc})", step.name) from None
        view = {"status": response.status, "headers": response.headers, "body": sending.body_of(response)}
        decision = answers.decide(
            step, connection, response, view, answer, lambda rule, data: evaluate(plan, rule, data, where)
        )
        stage.update(status=response.status, outcome=decision.outcome, decided_by=decision.decided_by)
        if decision.outcome != "success":
            reason = sending.reason_for(
                plan, step, decision, connection.name, response, answer, {**scope, **view}, where
            )
            status = _ENDS[decision.outcome]
            raise Stop(status, reason, step.name, response.retry_after if status == "retry" else None)
        captured = {name: evaluate(plan, expression, view, where) for name, expression in step.capture}
        if captured:
            stage["captured"] = captured
        return captured


def _check_required(plan: Plan, variables: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    """Skip, saying why, rather than send null for a variable the query declares non-null (`$id: ID!`): Scope
    would refuse the query, and the event would be dead for what is the webhook's gap, not a failure."""
    assert plan.query is not None
    for name, kind in required_variables(plan.query.document, plan.query.operation):
        if name in variables and variables[name] is None:
            noted = "; ".join(event.get("problems") or []) or "the webhook carries no value for it"
            raise Stop(
                "skipped",
                f"query ({at(plan, plan.query.location.line)}): not sent: ${name} ({kind}) is required but "
                f"would be null ({noted})",
            )


def _default_key(event: Event, plan: Plan) -> str:
    return f"{plan.name}|{event.delivery_id or event.resource_id or ''}"
