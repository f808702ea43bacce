"""Operator commands over the store: list and show events, replay them with the current mapping, send a test.

Plain functions (the library) plus `register(app)`, which adds them to the `wlmap` command line as
`wlmap events list|show`, `wlmap replay` and `wlmap send`. Event ids: a number is a job (one mapping run for
one webhook); `d<number>` is a stored delivery (the webhook itself, e.g. one no mapping wanted).
"""

# No `from __future__ import annotations`: typer reads the annotations of the commands defined inside
# register(), and those refer to names (typer, Annotated) local to it.

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mapper import loader, report
from mapper.errors import MappingError
from mapper.events import normalise
from mapper.plan import Plan
from mapper.signature import SignatureScheme, sign

# The store is imported where it is used: every `wlmap` command (validate too) imports this module.

if TYPE_CHECKING:
    import typer

    from mapper.store import Claimed, DeliveryRow, JobRow, Store
    from mapper.worker import RunFunction

STORE_ENV: Final = "WLMAP_STORE"
MAPPINGS_ENV: Final = "WLMAP_MAPPINGS"
SECRETS_ENV: Final = "WLMAP_WEBHOOK_SECRETS"
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
_SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


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
    from mapper.store import StoreError, open_store

    if not location.startswith(("postgres://", "postgresql://")) and not Path(location).exists():
        raise OpsError(f"there is no store at {location} (use --store or set {STORE_ENV})")
    try:
        return open_store(location)
    except StoreError as exc:
        raise OpsError(str(exc)) from None


# ---------------------------------------------------------------------------------------------- listing


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


def render_table(lines: Sequence[EventLine], width: int = 60) -> str:
    """A plain-text table; long reasons are cut to `width` characters."""
    if not lines:
        return "no events"
    rows = [("ID", "RECEIVED", "MAPPING", "STATUS", "ATTEMPTS", "RESOURCE", "REASON")]
    for line in lines:
        reason = line.reason if len(line.reason) <= width else line.reason[: width - 3] + "..."
        rows.append(
            (line.id, when(line.received), line.mapping, line.status, str(line.attempts), line.resource, reason)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    )


# ---------------------------------------------------------------------------------------------- showing


def _masked(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {name: "***" if name.lower() in _SECRET_HEADERS else value for name, value in headers}


def _body_text(body: bytes, limit: int = 20_000) -> str:
    try:
        text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        text = body.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def show_event(store: "Store", ident: str) -> str:
    """Everything stored about a job (every attempt with its trace) or a delivery."""
    kind, number = parse_id(ident)
    if kind == "delivery":
        return _show_delivery(store, number)
    detail = store.job(number)
    job, d = detail.job, detail.delivery
    lines = [
        f"job {job.id} · mapping {job.mapping} ({job.mapping_file}) · {job.status} · "
        f"{job.attempts} attempt{'s' * (job.attempts != 1)}",
        f"webhook d{d.id} received {when(d.received_at)} · delivery id {d.delivery_id or '-'} · "
        f"signature {d.signature} · {d.summary}",
    ]
    if job.last_reason:
        lines.append(f"reason: {job.last_reason}")
    if job.replay_of is not None:
        lines.append(f"replay of job {job.replay_of}")
    if job.superseded_by is not None:
        verb = "replayed as" if job.status == "replayed" else "superseded by"
        lines.append(f"{verb} job {job.superseded_by}")
    if job.status in ("pending", "retry"):
        lines.append(f"next attempt: {when(job.next_attempt_at)}")
    for attempt in detail.attempts:
        took = "" if attempt.finished_at is None else f" ({attempt.finished_at - attempt.started_at:.3f} s)"
        lines += [
            "",
            f"attempt {attempt.number} · {when(attempt.started_at)}{took} · {attempt.status}"
            + (f" · step {attempt.step}" if attempt.step else ""),
        ]
        if attempt.reason:
            lines.append(f"  reason: {attempt.reason}")
        if attempt.trace:
            lines.append("  trace:")
            text = json.dumps(attempt.trace, indent=2, ensure_ascii=False)
            lines.extend("    " + row for row in text.splitlines())
    return "\n".join(lines)


def _show_delivery(store: "Store", number: int) -> str:
    d = store.delivery(number)
    lines = [
        f"webhook d{d.id} · {d.status} · received {when(d.received_at)} · "
        f"delivery id {d.delivery_id or '-'} · signature {d.signature}",
        f"summary: {d.summary}",
    ]
    if d.duplicate_of is not None:
        lines.append(f"duplicate of d{d.duplicate_of}")
    jobs = store.jobs(delivery=d.id, limit=1000)
    if jobs:
        lines.append("jobs: " + ", ".join(f"{j.id} ({j.mapping}: {j.status})" for j in reversed(jobs)))
    lines += ["headers:", *(f"  {k}: {v}" for k, v in _masked(d.headers).items())]
    if d.body:
        lines += ["body:", *("  " + row for row in _body_text(d.body).splitlines())]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- replaying


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
                raise OpsError(f"the mappings in {key} are not valid:\n{report.text(exc.errors)}") from None
        return self._files[key]

    def plan(self, name: str, file: str) -> Plan:
        """The mapping called `name`: from --mappings when given, else from the file it was run from."""
        paths = list(self.paths) if self.paths else [Path(file)]
        found = self._load(paths, ", ".join(map(str, paths))).get(name)
        if found is None:
            raise OpsError(f"no mapping named `{name}` in {', '.join(map(str, paths))}")
        return found

    def every(self) -> list[Plan]:
        paths = list(self.paths) if self.paths else [Path(self.env.get(MAPPINGS_ENV, "mappings"))]
        return list(self._load(paths, ", ".join(map(str, paths))).values())


def _describe(status: str, reason: str | None) -> str:
    return f"{status} ({reason})" if reason else status


async def replay(
    store: "Store",
    ids: Sequence[str] = (),
    *,
    status: str | None = None,
    since: str | None = None,
    runner: str = "mapper.runner:Runner",
    env: Mapping[str, str] | None = None,
    mappings: Sequence[Path] | None = None,
    lease: float = REPLAY_LEASE,
) -> list[Replayed]:
    """Run stored webhooks again with the CURRENT mappings, here and now; one Replayed per job made."""
    from mapper.service import load_runner
    from mapper.store import NotFound, NotReplayable, StoreError

    env = dict(os.environ) if env is None else env
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
    from mapper.worker import Worker, WorkerOptions

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
    from mapper.service import matches
    from mapper.store import NewJob, NotReplayable

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


# ----------------------------------------------------------------------------------------------- sending


def send(
    file: Path,
    url: str,
    secret: str | None,
    *,
    headers_file: Path | None = None,
    delivery_id: str | None = None,
    scheme: SignatureScheme | None = None,
    timeout: float = 10.0,
) -> tuple[int, str, str]:
    """POST a saved webhook body, signed as Scope signs it; (status, response text, delivery id used).

    The delivery id is fresh unless given, so sending the same file twice is two events, not a duplicate.
    Without a secret the webhook goes unsigned (a legacy webhook).
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
    import uuid

    delivery_id = delivery_id or str(uuid.uuid4())
    headers["X-Scope-Webhook-Id"] = delivery_id
    if secret:
        headers[scheme.header] = sign(body, secret, scheme)
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise OpsError(f"cannot send to {url}: {exc}") from None
    return response.status_code, response.text, delivery_id


# ------------------------------------------------------------------------------------------ command line


def _first_secret(env: Mapping[str, str]) -> str | None:
    secrets = [part.strip() for part in env.get(SECRETS_ENV, "").split(",") if part.strip()]
    return secrets[-1] if secrets else None  # during a rotation the newest is listed last


def register(app: "typer.Typer") -> None:
    """Add `events list|show`, `replay` and `send` to the wlmap command line."""
    from contextlib import contextmanager
    from typing import Annotated

    import typer

    @contextmanager
    def plain_errors() -> Any:
        from mapper.store import StoreError

        try:
            yield
        except (OpsError, StoreError) as exc:
            typer.echo(f"wlmap: {exc}", err=True)
            raise typer.Exit(1) from None

    store_option = typer.Option("--store", envvar=STORE_ENV, help="The store: a SQLite file or a postgresql:// URL.")
    status_help = f"One of: {', '.join(STATUSES)}."
    events = typer.Typer(
        help="Stored webhooks and the jobs they caused.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
    )

    @events.command("list")
    def events_list(
        status: Annotated[str | None, typer.Option("--status", help=status_help)] = None,
        mapping: Annotated[str | None, typer.Option("--mapping", help="Only this mapping's jobs.")] = None,
        store: Annotated[str, store_option] = "wlmap.db",
        limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 50,
    ) -> None:
        """List events, newest first: id, received, mapping, status, attempts, resource, reason."""
        with plain_errors():
            opened = open_existing(store)
            try:
                typer.echo(render_table(list_events(opened, status=status, mapping=mapping, limit=limit)))
            finally:
                opened.close()

    @events.command("show")
    def events_show(
        ident: Annotated[str, typer.Argument(metavar="ID", help="A job (12) or a delivery (d7).")],
        store: Annotated[str, store_option] = "wlmap.db",
    ) -> None:
        """Show one event: the webhook, and every attempt with its (masked) trace."""
        from mapper.store import NotFound

        with plain_errors():
            opened = open_existing(store)
            try:
                typer.echo(show_event(opened, ident))
            except NotFound as exc:
                raise OpsError(str(exc)) from None
            finally:
                opened.close()

    @app.command("replay")
    def replay_command(
        ids: Annotated[
            list[str] | None,
            typer.Argument(metavar="ID...", help="Jobs (12) or ignored deliveries (d7).", show_default=False),
        ] = None,
        status: Annotated[str | None, typer.Option("--status", help="Replay every job in this state (dead).")] = None,
        since: Annotated[
            str | None, typer.Option("--since", help="With --status: received at or after this time (ISO 8601).")
        ] = None,
        mappings: Annotated[
            list[Path] | None,
            typer.Option("--mappings", help="Take the mappings from here (default: the file each job ran from)."),
        ] = None,
        store: Annotated[str, store_option] = "wlmap.db",
        runner: Annotated[str, typer.Option("--runner", hidden=True)] = "mapper.runner:Runner",
    ) -> None:
        """Run stored webhooks again with the CURRENT mapping; print each outcome before → after."""
        if not ids and status is None:
            typer.echo("usage: wlmap replay ID... | --status dead [--since ISO]", err=True)
            raise typer.Exit(2)
        with plain_errors():
            opened = open_existing(store)
            try:
                import asyncio

                done = asyncio.run(
                    replay(opened, ids or [], status=status, since=since, runner=runner, mappings=mappings)
                )
            finally:
                opened.close()
        for line in done:
            typer.echo(str(line))
        if not done:
            typer.echo("nothing to replay")
        raise typer.Exit(1 if any(r.problem or r.after.startswith("dead") for r in done) else 0)

    @app.command("send")
    def send_command(
        file: Annotated[Path, typer.Argument(help="The webhook body (JSON) to send.", show_default=False)],
        url: Annotated[str, typer.Option("--url", help="The listener, e.g. http://127.0.0.1:8000/webhooks.")],
        secret: Annotated[
            str | None, typer.Option("--secret", help=f"Signing secret (default: ${SECRETS_ENV}).")
        ] = None,
        headers: Annotated[Path | None, typer.Option("--headers", help="A JSON object of headers to send.")] = None,
        delivery_id: Annotated[
            str | None, typer.Option("--delivery-id", help="X-Scope-Webhook-Id (default: a new one).")
        ] = None,
        unsigned: Annotated[bool, typer.Option("--unsigned", help="Send no signature (a legacy webhook).")] = False,
    ) -> None:
        """POST a correctly signed test webhook and print the answer."""
        key = None if unsigned else (secret or _first_secret(os.environ))
        if key is None and not unsigned:
            typer.echo(f"wlmap: no secret: pass --secret, set {SECRETS_ENV}, or use --unsigned", err=True)
            raise typer.Exit(1)
        with plain_errors():
            status, text, used = send(file, url, key, headers_file=headers, delivery_id=delivery_id)
        typer.echo(f"X-Scope-Webhook-Id: {used}")
        typer.echo(f"{status} {text}")
        raise typer.Exit(0 if 200 <= status < 300 else 1)

    app.add_typer(events, name="events")
