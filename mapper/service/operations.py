"""Operator actions over the store: list events, replay them with the current mappings, prune old ones, send a
test webhook.

Event ids: a number is a job (one mapping run for one webhook); `d<number>` is a stored delivery (the webhook
itself, e.g. one no mapping wanted). `wlmap events`, `wlmap replay` and `wlmap send` call these functions.
"""

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from mapper.errors import MappingError, as_text
from mapper.events import normalise
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.service.options import MAPPINGS, MAPPINGS_ENV, RUNNER, STORE_ENV, secrets_from
from mapper.service.signature import SignatureScheme, sign

# The store is imported where it is used: every `wlmap` command (validate too) may import this module.

if TYPE_CHECKING:
    from mapper.service.store import Claimed, DeliveryRow, JobRow, Store
    from mapper.service.worker import RunFunction

REPLAY_LEASE: Final = 600.0  # seconds a replay run holds its job before the service may take it over

# What `--status` words select: jobs by state, or deliveries (ignored, duplicate).
JOB_FILTERS: Final[Mapping[str, tuple[str, ...]]] = {
    "pending": ("pending", "running"),
    "running": ("running",),
    "failed": ("retry",),
    "retry": ("retry",),
    "done": ("done",),
    "skipped": ("skipped",),
    "dead": ("dead",),
    "coalesced": ("coalesced",),
    "replayed": ("replayed",),
}
DELIVERY_FILTERS: Final = ("ignored", "duplicate")
STATUSES: Final = (*JOB_FILTERS, *DELIVERY_FILTERS)


class OpsError(Exception):
    """An operator command cannot do what was asked; the message says why."""


def when(timestamp: float | None) -> str:
    """A stored time as ISO 8601 UTC, to the second."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_since(text: str) -> float:
    """An ISO 8601 date or time (UTC unless it says otherwise) as seconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OpsError(f"--since {text!r} is not an ISO 8601 time, e.g. 2024-05-01T10:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_id(text: str) -> tuple[str, int]:
    """("job", 12) from "12", ("delivery", 7) from "d7"."""
    raw = text.strip().lower()
    kind = "delivery" if raw.startswith("d") else "job"
    digits = raw[1:] if kind == "delivery" else raw
    if not digits.isdigit():
        raise OpsError(f"{text!r} is not an event id: use a job number (12) or a delivery (d7)")
    return kind, int(digits)


def open_existing(location: str) -> "Store":
    """The store at location; OpsError if there is none (reading must not create an empty one)."""
    from mapper.service.store import StoreError, open_store

    if not location.startswith(("postgres://", "postgresql://")) and not Path(location).exists():
        raise OpsError(f"there is no store at {location} (use --store or set {STORE_ENV})")
    try:
        return open_store(location)
    except StoreError as exc:
        raise OpsError(str(exc)) from None


@dataclass(frozen=True)
class EventLine:
    """One row of `wlmap events list`."""

    id: str
    received: float
    mapping: str
    status: str
    attempts: int
    resource: str
    reason: str


def _job_line(job: "JobRow") -> EventLine:
    return EventLine(
        str(job.id),
        job.received_at,
        job.mapping,
        job.status,
        job.attempts,
        job.resource_key or "-",
        job.last_reason or "",
    )


def _delivery_line(delivery: "DeliveryRow") -> EventLine:
    reason = delivery.summary if delivery.status == "ignored" else f"duplicate of d{delivery.duplicate_of}"
    return EventLine(f"d{delivery.id}", delivery.received_at, "-", delivery.status, 0, "-", reason)


def list_events(
    store: "Store", *, status: str | None = None, mapping: str | None = None, limit: int = 50
) -> list[EventLine]:
    """Jobs (and ignored deliveries when no mapping is asked for), newest first."""
    if status is not None and status not in STATUSES:
        raise OpsError(f"--status {status!r} is not one of: {', '.join(STATUSES)}")
    lines: list[EventLine] = []
    if status is None or status in JOB_FILTERS:
        statuses = JOB_FILTERS[status] if status is not None else ()
        lines.extend(_job_line(job) for job in store.jobs(statuses=statuses, mapping=mapping, limit=limit))
    if mapping is None and (status is None or status in DELIVERY_FILTERS):
        wanted = (status,) if status is not None else ("ignored",)
        lines.extend(_delivery_line(d) for d in store.deliveries(statuses=wanted, limit=limit))
    lines.sort(key=lambda line: line.received, reverse=True)
    return lines[:limit]


@dataclass(frozen=True)
class Replayed:
    """What one replay did: the job it made and the outcome before → after (or why it could not)."""

    source: str  # "job 12" or "d7"
    job: int | None
    mapping: str
    before: str
    after: str
    problem: str | None = None

    def __str__(self) -> str:
        if self.problem is not None:
            return f"{self.source}: not replayed: {self.problem}"
        return f"{self.source} → job {self.job} ({self.mapping}): {self.before} → {self.after}"


class _Plans:
    """The CURRENT mappings, read from their files once per replay command."""

    def __init__(self, env: Mapping[str, str], paths: Sequence[Path] | None) -> None:
        self.env, self.paths = env, paths
        self._files: dict[str, dict[str, Plan]] = {}

    def _load(self, paths: Sequence[Path], key: str) -> dict[str, Plan]:
        if key not in self._files:
            try:
                self._files[key] = {plan.name: plan for plan in loader.load_plans(paths, self.env)}
            except MappingError as exc:
                raise OpsError(f"the mappings in {key} are not valid:\n{as_text(exc.errors)}") from None
        return self._files[key]

    def plan(self, name: str, file: str) -> Plan:
        """The mapping called `name`: from --mappings when given, else from the file it was run from."""
        paths = list(self.paths) if self.paths else [Path(file)]
        found = self._load(paths, ", ".join(map(str, paths))).get(name)
        if found is None:
            raise OpsError(f"no mapping named `{name}` in {', '.join(map(str, paths))}")
        return found

    def every(self) -> list[Plan]:
        paths = list(self.paths) if self.paths else [Path(self.env.get(MAPPINGS_ENV, MAPPINGS))]
        return list(self._load(paths, ", ".join(map(str, paths))).values())


def _describe(status: str, reason: str | None) -> str:
    return f"{status} ({reason})" if reason else status


async def replay(
    store: "Store",
    ids: Sequence[str] = (),
    *,
    status: str | None = None,
    since: str | None = None,
    runner: str = RUNNER,
    env: Mapping[str, str],
    mappings: Sequence[Path] | None = None,
    lease: float = REPLAY_LEASE,
) -> list[Replayed]:
    """Run stored webhooks again with the CURRENT mappings, here and now; one Replayed per job made."""
    from mapper.service.runners import load_runner
    from mapper.service.store import NotFound, NotReplayable, StoreError

    targets = [parse_id(ident) for ident in ids]
    if status is not None:
        if status not in ("dead", "done", "skipped", "failed"):
            raise OpsError(f"--status {status!r}: replay takes dead, done, skipped or failed jobs")
        since_at = parse_since(since) if since else None
        found = store.jobs(statuses=JOB_FILTERS[status], since=since_at, limit=1_000_000)
        targets += [("job", job.id) for job in sorted(found, key=lambda job: job.id)]
    if not targets:
        return []
    plans = _Plans(env, mappings)
    run = load_runner(runner, env)
    results: list[Replayed] = []
    try:
        for kind, number in targets:
            try:
                if kind == "job":
                    results.append(await _replay_job(store, number, plans, run.run, lease))
                else:
                    results.extend(await _replay_delivery(store, number, plans, run.run, lease))
            except (OpsError, NotFound, NotReplayable, StoreError) as exc:
                source = f"job {number}" if kind == "job" else f"d{number}"
                results.append(Replayed(source, None, "-", "", "", problem=str(exc)))
    finally:
        await run.aclose()
    return results


async def _run_claimed(
    store: "Store", claimed: "Claimed", plans: Mapping[str, Plan], run: "RunFunction", lease: float
) -> str:
    from mapper.service.worker import Worker, WorkerOptions

    worker = Worker(store, lambda: plans, run, WorkerOptions(concurrency=1, lease=lease))
    finish = await worker.handle(claimed)
    if finish is None:
        return "unknown (the result could not be recorded; the service will run the job again)"
    after = _describe(finish.status, finish.reason)
    if finish.status == "retry":
        after += f"; the service tries again at {when(finish.next_attempt_at)}"
    return after


async def _replay_job(store: "Store", number: int, plans: _Plans, run: "RunFunction", lease: float) -> Replayed:
    job = store.job(number).job
    before = _describe(job.status, job.last_reason)
    plan = plans.plan(job.mapping, job.mapping_file)
    claimed = store.replay(number, lease, mapping_file=plan.file)
    after = await _run_claimed(store, claimed, {plan.name: plan}, run, lease)
    return Replayed(f"job {number}", claimed.job, plan.name, before, after)


async def _replay_delivery(
    store: "Store", number: int, plans: _Plans, run: "RunFunction", lease: float
) -> list[Replayed]:
    from mapper.service.mappings import matches
    from mapper.service.store import NewJob, NotReplayable

    delivery = store.delivery(number)
    if delivery.status != "ignored":
        raise NotReplayable(f"d{number} is {delivery.status}, not ignored: replay its jobs instead")
    event = normalise(delivery.body, dict(delivery.headers))
    wanted = {plan.name: plan for plan in plans.every() if matches(plan, event)}
    if not wanted:
        return [Replayed(f"d{number}", None, "-", "", "", problem="still no mapping wants this event")]
    jobs = [NewJob(plan.name, event.resource_id, plan.file) for plan in wanted.values()]
    results = []
    for claimed in store.reroute(number, jobs, lease):
        after = await _run_claimed(store, claimed, wanted, run, lease)
        results.append(Replayed(f"d{number}", claimed.job, claimed.mapping, "ignored", after))
    return results


# What `wlmap prune --status` takes: finished jobs and webhooks that made none; `all` adds the dead to the rest.
PRUNE_DEFAULT: Final = ("done", "skipped", "coalesced", "replayed", "ignored", "duplicate")
PRUNE_STATUSES: Final = (*PRUNE_DEFAULT, "dead")
_UNITS: Final = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_age(text: str) -> float:
    """Seconds from `30d`, `12h`, `90m` or `2w`."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([mhdw])\s*", text)
    if match is None:
        raise OpsError(f"--older-than {text!r} is not an age: write e.g. 30d (days), 12h, 90m or 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


def prune_statuses(text: str | None) -> tuple[str, ...]:
    """The statuses `--status` names (comma-separated; `all` is every one, the dead too)."""
    if text is None:
        return PRUNE_DEFAULT
    named = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if "all" in named:
        return PRUNE_STATUSES
    wrong = [name for name in named if name not in PRUNE_STATUSES]
    if wrong or not named:
        active = " (jobs with work to do are never pruned)" if set(wrong) & {"pending", "running", "retry"} else ""
        raise OpsError(f"--status {text!r}: use {', '.join(PRUNE_STATUSES)} or all, comma-separated{active}")
    return named


def prune(store: "Store", older_than: str, statuses: str | None = None, *, vacuum: bool = False) -> list[str]:
    """Delete what finished before `older_than` ago (dead jobs only when asked); lines saying what went."""
    age = parse_age(older_than)
    chosen = prune_statuses(statuses)
    cutoff = store.clock() - age
    pruned = store.prune_events(cutoff, chosen)
    lines = [
        f"pruned {pruned.jobs} job(s) and {pruned.deliveries} stored webhook(s) of status {', '.join(chosen)} "
        f"from before {when(cutoff)}" + (f"; gave back {_size(pruned.freed_bytes)}" if pruned.freed_bytes else "")
    ]
    if "dead" not in chosen:
        lines.append("dead jobs were kept: add --status dead (or all) to prune them too")
    if vacuum:
        lines.append(f"vacuumed: the store is {_size(store.vacuum())} smaller and now gives space back by itself")
    elif not store.gives_space_back:
        lines.append(
            "this store was made before wlmap gave pruned space back to the disk: run `wlmap prune --vacuum` once "
            "(best with the service stopped: it rewrites the whole file, and needs as much free disk as it is big)"
        )
    return lines


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count:,} bytes"


def send(
    file: Path,
    url: str,
    secret: str | None,
    *,
    headers_file: Path | None = None,
    delivery_id: str | None = None,
    scheme: SignatureScheme | None = None,
    timeout: float = 10.0,
) -> tuple[int, str, str | None]:
    """POST a saved webhook body, signed as Scope signs it; (status, response text, delivery id used or None).

    The delivery id (X-Scope-Webhook-Id) is `delivery_id`, else the headers file's, else a fresh one, so that
    sending the same file twice is two events unless the file says otherwise. Without a secret the webhook goes
    unsigned, as Scope sends a legacy webhook: with no id either (unless given), so that the listener finds a
    re-sent copy by its body.
    """
    import httpx

    scheme = scheme or SignatureScheme()
    try:
        body = file.read_bytes()
        given = json.loads(headers_file.read_text("utf-8")) if headers_file is not None else {}
    except OSError as exc:
        raise OpsError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise OpsError(f"{headers_file} is not a JSON object of headers: {exc}") from None
    if not isinstance(given, dict):
        raise OpsError(f"{headers_file} is not a JSON object of headers")
    dropped = {scheme.header.lower(), "x-scope-webhook-id", "content-length", "host"}
    headers = {"Content-Type": "application/json"}
    headers.update({str(k): str(v) for k, v in given.items() if str(k).lower() not in dropped})
    from_file = [str(v) for k, v in given.items() if str(k).lower() == "x-scope-webhook-id" and str(v).strip()]
    delivery_id = delivery_id or (from_file[0] if from_file else None) or (str(uuid.uuid4()) if secret else None)
    if delivery_id is not None:
        headers["X-Scope-Webhook-Id"] = delivery_id
    if secret:
        headers[scheme.header] = sign(body, secret, scheme)
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise OpsError(f"cannot send to {url}: {exc}") from None
    return response.status_code, response.text, delivery_id


def first_secret(env: Mapping[str, str]) -> str | None:
    """The secret `wlmap send` signs with: during a rotation the newest, listed last."""
    secrets = secrets_from(env)
    return secrets[-1] if secrets else None
