"""The compiled, immutable form of a mapping: what the compiler produces and the runner executes.

Every expression is already compiled and every reference checked when a Plan exists; nothing in it can
fail for a reason the mapping's author could have been told about before the first event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from mapper.errors import Location
from mapper.language.cron import Cron
from mapper.language.expressions import Query, Template

Outcome = Literal["success", "skip", "retry", "fail"]
BodyKind = Literal["none", "json", "form", "text"]

# The Svix default schedule: https://docs.svix.com/retries (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
DEFAULT_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = 30.0
_EMPTY: Mapping[Any, Any] = MappingProxyType({})

# The records below are NamedTuples, not dataclasses: as immutable, and ~7x cheaper to define, which
# matters because `wlmap validate` runs as a pre-commit hook and its start-up time is budgeted.


class Expression(NamedTuple):
    """A JMESPath expression with its place in the mapping."""

    query: Query
    location: Location
    where: str  # the part of the mapping, in words: 'step "update-incident" > when'

    @property
    def source(self) -> str:
        return self.query.source

    def search(self, data: Any) -> Any:
        return self.query.search(data)


class Value(NamedTuple):
    """A value from the YAML whose text parts are templates: a string, or a JSON tree (json bodies, variables).

    `render(scope)` returns a new plain value; literal parts are shared, never copied.
    """

    location: Location
    where: str
    render: Callable[[Mapping[str, Any]], Any]
    templates: tuple[Template, ...] = ()  # every template inside, for reference checks and traces

    @property
    def is_literal(self) -> bool:
        return not self.templates


class RetryPolicy(NamedTuple):
    statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    network_errors: bool = True
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.2
    max_retry_after: float = 3600.0
    quick_retries: int = 2


class Auth(NamedTuple):
    kind: Literal["none", "basic", "bearer", "api_key", "oauth2"] = "none"
    values: Mapping[str, Value] = _EMPTY  # username/password, token, value, token_url/client_id/client_secret
    name: str | None = None  # api_key: header or parameter name
    placement: Literal["header", "query"] = "header"  # api_key
    scopes: tuple[str, ...] = ()  # oauth2
    audience: str | None = None  # oauth2
    client_auth: Literal["basic", "body"] = "basic"  # oauth2


class Csrf(NamedTuple):
    fetch_path: str = "/"
    header: str = "x-csrf-token"


class Tls(NamedTuple):
    verify: bool = True
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None


class Connection(NamedTuple):
    name: str
    location: Location
    url: Value | None  # GraphQL endpoint
    base_url: Value | None  # target systems
    headers: tuple[tuple[str, Value], ...] = ()
    params: tuple[tuple[str, Value], ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    tls: Tls = Tls()
    auth: Auth = Auth()
    csrf: Csrf | None = None
    idempotency_header: str | None = None
    retry: RetryPolicy = RetryPolicy()


MissedRuns = Literal["run_once", "skip"]


class Schedule(NamedTuple):
    """`trigger: {schedule: ...}`: the mapping runs at these times, with no webhook (`since`, `until`)."""

    location: Location
    cron: Cron
    missed: MissedRuns = "run_once"  # due times that passed while no wlmap was running: one run, or none


class Trigger(NamedTuple):
    location: Location
    events: frozenset[str] = frozenset()  # event keys: "created", "updated", ...
    resource_types: frozenset[str] = frozenset()  # type keys: "callsession", "scenariosession"
    topics: frozenset[str] = frozenset()
    when: Expression | None = None
    allow_unsigned: bool = False  # also runs for unsigned legacy webhooks (when the service allows them)
    schedule: Schedule | None = None  # a scheduled mapping: no webhook ever matches it


# The limits of `collect:` when the mapping does not set them.
MAX_ITEMS = 1000  # per bucket
MAX_OPEN_BUCKETS = 10_000  # per mapping
MAX_ITEM_BYTES = 64 * 1024  # one item's values as JSON


class Collect(NamedTuple):
    """`collect:`: each matching event's extracted values go into a bucket; the steps run once per closed bucket.

    A bucket closes on the first of its rules that holds: `count` items, `window` seconds after its first
    item, `idle` seconds after its last, the next `at` time after it opened, or `until` over its items.
    """

    location: Location
    group_by: Expression | None = None  # None: one bucket at a time for the whole mapping
    distinct_by: Expression | None = None  # an item with the same key replaces the earlier one, in its place
    close_count: int | None = None  # `close: {count: N}` (`count` would hide tuple.count)
    window: float | None = None
    idle: float | None = None
    at: Cron | None = None
    until: Expression | None = None  # JMESPath over {items, group}
    max_items: int = MAX_ITEMS
    max_open: int = MAX_OPEN_BUCKETS
    max_item_bytes: int = MAX_ITEM_BYTES


class GraphQLQuery(NamedTuple):
    location: Location
    connection: str
    document: str
    operation: str | None
    variables: Value  # renders to a dict


class GraphQLCall(NamedTuple):
    """A step's GraphQL document (a query or a mutation), sent as one POST to its connection's `url`."""

    document: str
    operation: str | None
    variables: Value  # renders to a dict
    mutation: bool  # not safe to repeat without an idempotency key


class OutcomeRule(NamedTuple):
    """One entry of a step's `outcomes:`: when `when` holds for the answer, the step ends with `outcome`."""

    when: Expression  # JMESPath over {status, headers, body}
    outcome: Outcome
    reason: Value | None  # a template over the step's names and the answer; None: the answer in words


class Extraction(NamedTuple):
    name: str
    expression: Expression


class Body(NamedTuple):
    kind: BodyKind = "none"
    value: Value | None = None
    content_type: str | None = None


class Step(NamedTuple):
    name: str
    key: str  # the name as reachable from templates: `find-order` → `find_order`
    location: Location
    connection: str
    method: str
    path: Value | None  # rendered with percent-encoding of inserted values
    url: Value | None
    params: tuple[tuple[str, Value], ...] = ()
    headers: tuple[tuple[str, Value], ...] = ()
    body: Body = Body()
    when: Expression | None = None
    for_each: Expression | None = None
    capture: tuple[tuple[str, Expression], ...] = ()
    expect: frozenset[int] | None = None  # None: any 2xx
    on_status: Mapping[str, Outcome] = _EMPTY  # "404" or "4xx" → outcome
    timeout: float | None = None
    outcomes: tuple[OutcomeRule, ...] = ()  # checked in order before everything else; the first that holds wins
    graphql: GraphQLCall | None = None  # a GraphQL step: its document instead of path/url/params/body
    on_error: Mapping[str, Outcome] = _EMPTY  # GraphQL error code → outcome

    def outcome_for(self, status: int) -> Outcome | None:
        """What the mapping says a status means; None when it says nothing (then the default rules apply)."""
        explicit = self.on_status.get(str(status)) or self.on_status.get(f"{status // 100}xx")
        if explicit:
            return explicit
        if self.expect is not None:
            return "success" if status in self.expect else None
        return "success" if 200 <= status < 300 else None


ParameterType = Literal["string", "integer", "number", "boolean"]
EXTERNAL_DATA = "externalData"  # where Scope AR keeps a link's extra parameters (calls, sessions, steps)
LINK_TARGETS = ("asset", "asset_id", "catalog", "contact")  # `asset_id` in older Scope AR text
SIGNATURE_PARAMETER = "sig"  # the parameter that carries a signed link's HMAC
LINK_KEY_ENV = "WLMAP_LINK_KEY"  # the signing key(s), comma-separated during a rotation, the newest last
# Parameter names the link or the /links endpoint use themselves: no mapping may declare them.
RESERVED_PARAMETERS = frozenset({"action", *LINK_TARGETS, SIGNATURE_PARAMETER, "deferred", "access_token"})


class LinkParameter(NamedTuple):
    """One extra parameter of the deep link: it comes back as `externalData.<name>`."""

    name: str
    location: Location
    type: ParameterType = "string"
    required: bool = False
    pattern: str | None = None  # a regular expression the whole value must match
    max_length: int | None = None  # in characters
    description: str = ""


class Link(NamedTuple):
    """The deep link the system of record builds for this mapping: the contract between the two.

    `worklink://resource?action=<action>&<target>=<id>&<parameter>=<value>...` (docs/mapping.md, "Building the
    deep link"); with `signed`, one more parameter carries an HMAC of the others, and the runner skips an event
    whose `externalData` does not carry a matching one.
    """

    location: Location
    action: str = "fetch_catalog"
    target: str = "asset"  # the WorkLink parameter naming what to open: asset, asset_id, catalog or contact
    target_id: str | None = None  # a fixed id; otherwise it is given with each link
    parameters: tuple[LinkParameter, ...] = ()
    signed: bool = False
    # Where this mapping reads externalData, e.g. ("result", "node", "externalData"): the runner checks the
    # signature there and `wlmap test` puts a case's link parameters there. () when the mapping reads none.
    external_data: tuple[str, ...] = ()

    def parameter(self, name: str) -> LinkParameter | None:
        return next((p for p in self.parameters if p.name == name), None)


class Plan(NamedTuple):
    name: str
    description: str
    file: str
    digest: str  # sha256 of the mapping text: which version of the mapping ran
    trigger: Trigger
    connections: Mapping[str, Connection]
    query: GraphQLQuery | None
    extract: tuple[Extraction, ...]
    skip_unless: Expression | None
    steps: tuple[Step, ...]
    env_names: frozenset[str]  # every env variable the mapping reads
    lines: tuple[str, ...] = ()  # the mapping text, for messages that quote it
    link: Link | None = None  # the deep link the mapping expects (`link:`), when it declares one
    secrets: frozenset[str] = frozenset()  # env variables the mapping marks secret (`secrets:`), beyond the rules
    collect: Collect | None = None  # a collecting mapping: its steps run once per closed bucket

    @property
    def schedule(self) -> Schedule | None:
        return self.trigger.schedule
