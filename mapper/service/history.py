"""What operators read about an event: why a job waits, its history, each attempt's timeline, a replay's diff.

Plain values built from the store; `wlmap events` prints them (report.events) and the console draws them
(service.console). Only stored values are used, and the store holds traces and reasons masked by the runner;
webhook headers that carry credentials are masked here.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mapper.events import normalise
from mapper.run.masking import MASK, SENSITIVE_HEADERS
from mapper.service import timeline

if TYPE_CHECKING:
    from mapper.service.store import ActionRow, AttemptRow, DeliveryRow, JobLine, JobRow, Store


def when(timestamp: float | None) -> str:
    """A stored time as ISO 8601 UTC, to the second."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_reason(reason: str | None, mapping_file: str) -> str:
    """A reason with the mapping's file named by its file name, not its whole path: the path is what pushed
    the 500 or the 401 out of sight."""
    if not reason:
        return ""
    if mapping_file and "/" in mapping_file:
        return reason.replace(mapping_file, Path(mapping_file).name)
    return reason


def waiting(job: JobRow | JobLine, now: float, blocker: int | None = None) -> str:
    """Why a job with work to do has not done it yet; "" for a finished job."""
    behind = getattr(job, "waiting_behind", blocker)
    if job.status == "pending":
        if behind is not None:
            return f"waiting behind job {behind} for the same resource"
        if job.next_attempt_at > now:
            return f"next try at {when(job.next_attempt_at)}"
        return "waiting for a free worker"
    if job.status == "retry":
        of = f" of {job.max_attempts}" if job.max_attempts else ""
        return f"next try at {when(job.next_attempt_at)} (attempt {job.attempts + 1}{of})"
    if job.status == "running":
        return f"running attempt {job.attempts}"
    return ""


def line_reason(job: JobLine, now: float) -> str:
    """The REASON of a job in a list: why it waits, then the last reason (with short file names)."""
    reason = short_reason(job.last_reason, job.mapping_file)
    why = waiting(job, now)
    said = f"{why}: {reason}" if why and reason and job.status == "retry" else (why or reason)
    if job.replay_of is not None:
        return f"replay of job {job.replay_of}" + (f": {said}" if said else "")
    return said


def masked_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, MASK if name.lower() in SENSITIVE_HEADERS else value) for name, value in headers]


def body_text(body: bytes, limit: int = 20_000) -> str:
    try:
        shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        shown = body.decode("utf-8", "replace")
    return shown if len(shown) <= limit else shown[:limit] + f"\n... ({len(shown) - limit} more characters)"


@dataclass(frozen=True)
class Happening:
    """One line of an event's history: when, who (a person, or "service"), what."""

    at: float
    who: str
    what: str


@dataclass(frozen=True)
class Attempt:
    row: AttemptRow
    timeline: timeline.Timeline | None  # None: no trace, or not the runner's (shown raw)


@dataclass(frozen=True)
class JobView:
    """Everything shown about a job."""

    job: JobRow
    delivery: DeliveryRow
    attempts: tuple[Attempt, ...]
    waiting: str
    reason: str
    history: tuple[Happening, ...]
    event: dict[str, Any]  # the webhook as mappings see it (normalised)
    headers: tuple[tuple[str, str], ...]  # masked
    body: str
    diff: tuple[str, ...] | None  # a replay that has run: its requests against the replayed job's last attempt
    can_replay: bool
    can_retry: bool
    can_cancel: bool


@dataclass(frozen=True)
class DeliveryView:
    """Everything shown about a stored webhook."""

    delivery: DeliveryRow
    jobs: tuple[JobRow, ...]
    passed: tuple[tuple[str, str], ...]  # at arrival: (mapping, why it passed), for an ignored webhook
    problems: tuple[str, ...]  # what normalising it noticed
    history: tuple[Happening, ...]
    event: dict[str, Any]
    headers: tuple[tuple[str, str], ...]
    body: str
    can_replay: bool


def _describe_action(action: ActionRow) -> str:
    target = f"job {action.job}" if action.job is not None else f"d{action.delivery}"
    asked = {"replay": "replay", "retry": "retry now", "cancel": "cancel"}.get(action.kind, action.kind)
    if action.state == "requested":
        return f"asked to {asked} {target}; waiting for the service to carry it out"
    if action.state == "refused":
        return f"asked to {asked} {target}: refused: {action.note}"
    was = f" (was {action.was})" if action.was else ""
    return f"{asked} {target}{was}: {action.note}"


def _attempt_lines(attempt: AttemptRow, mapping_file: str) -> list[Happening]:
    happened = [Happening(attempt.started_at, "service", f"attempt {attempt.number} started")]
    if attempt.finished_at is not None:
        step = f" at step {attempt.step}" if attempt.step else ""
        reason = f": {short_reason(attempt.reason, mapping_file)}" if attempt.reason else ""
        happened.append(
            Happening(attempt.finished_at, "service", f"attempt {attempt.number} {attempt.status}{step}{reason}")
        )
    return happened


def _attempt(row: AttemptRow, mapping_file: str) -> Attempt:
    """An attempt with short file names in its reasons, and its timeline when the trace is the runner's."""
    row = dataclasses.replace(row, reason=short_reason(row.reason, mapping_file) or row.reason)
    if row.trace is None or not timeline.is_trace(row.trace):
        return Attempt(row, None)
    read = timeline.read(row.trace)
    return Attempt(row, dataclasses.replace(read, reason=short_reason(read.reason, mapping_file)))


def job_view(store: Store, number: int) -> JobView:
    """The job, its webhook, every attempt's timeline, its history and (a replay) its diff; NotFound."""
    detail = store.job(number)
    job, delivery = detail.job, detail.delivery
    attempts = tuple(_attempt(a, job.mapping_file) for a in detail.attempts)
    related = [job.id] + ([job.replay_of] if job.replay_of is not None else [])
    actions = [
        a for a in store.actions(jobs=related) if a.job == job.id or (a.job == job.replay_of and job.id in a.made)
    ]
    history = [Happening(delivery.received_at, "Scope AR", f"webhook d{delivery.id} received: {delivery.summary}")]
    if job.replay_of is not None and not actions:
        history.append(Happening(job.created_at, "operator", f"made as a replay of job {job.replay_of}"))
    history += [Happening(a.requested_at, a.requested_by, _describe_action(a)) for a in actions]
    for attempt in detail.attempts:
        history += _attempt_lines(attempt, job.mapping_file)
    if job.superseded_by is not None:
        verb = "replayed as" if job.status == "replayed" else "superseded by"
        history.append(Happening(job.updated_at, "service", f"{verb} job {job.superseded_by}"))
    blocker = _blocker(store, job)
    return JobView(
        job,
        delivery,
        attempts,
        waiting(job, store.clock(), blocker),
        short_reason(job.last_reason, job.mapping_file),
        tuple(sorted(history, key=lambda h: h.at)),
        normalise(delivery.body, dict(delivery.headers)).as_dict(),
        tuple(masked_headers(delivery.headers)),
        body_text(delivery.body),
        replay_diff(store, job, detail.attempts),
        can_replay=job.status not in ("pending", "running", "retry"),
        can_retry=job.status == "retry",
        can_cancel=job.status in ("pending", "retry"),
    )


def _blocker(store: Store, job: JobRow) -> int | None:
    if job.status != "pending" or job.resource_key is None:
        return None
    from mapper.service.store import EventQuery

    found = store.jobs_page(
        EventQuery(statuses=("pending", "running", "retry"), mapping=job.mapping, resource=job.resource_key),
        before=job.id,
        limit=1000,
    )
    earlier = [line.id for line in found.rows]
    return min(earlier) if earlier else None


def replay_diff(store: Store, job: JobRow, attempts: Sequence[AttemptRow]) -> tuple[str, ...] | None:
    """A replay that has run: what changed in its requests compared with the replayed job's last attempt."""
    if job.replay_of is None:
        return None
    ran = [a for a in attempts if timeline.is_trace(a.trace)]
    if not ran:
        return None
    from mapper.service.store import StoreError

    try:
        earlier = [a for a in store.job(job.replay_of).attempts if timeline.is_trace(a.trace)]
    except StoreError:  # pruned, or the store is away: no diff rather than no page
        return None
    if not earlier:
        return None
    before, after = earlier[-1], ran[0]
    assert before.trace is not None and after.trace is not None
    lines = list(
        difflib.unified_diff(
            timeline.requests(before.trace),
            timeline.requests(after.trace),
            f"job {job.replay_of} attempt {before.number}",
            f"job {job.id} attempt {after.number}",
            lineterm="",
        )
    )
    return tuple(lines) if lines else ("the requests are the same as those of job " + f"{job.replay_of}",)


def delivery_view(store: Store, number: int) -> DeliveryView:
    """A stored webhook, the jobs it made, why each mapping passed (when it was ignored), its history."""
    d = store.delivery(number)
    jobs = tuple(reversed(store.jobs(delivery=d.id, limit=1000)))
    passed: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = ()
    if d.notes:
        try:
            notes = json.loads(d.notes)
            passed = tuple((str(k), str(v)) for k, v in (notes.get("mappings") or {}).items())
            problems = tuple(str(p) for p in notes.get("problems") or [])
        except (ValueError, AttributeError):
            passed = ()
    history = [Happening(d.received_at, "Scope AR", f"webhook d{d.id} received: {d.summary}")]
    if d.duplicate_of is not None:
        history.append(Happening(d.received_at, "service", f"a duplicate of d{d.duplicate_of}: not run again"))
    history += [Happening(a.requested_at, a.requested_by, _describe_action(a)) for a in store.actions(delivery=d.id)]
    history += [Happening(j.created_at, "service", f"job {j.id} made for mapping {j.mapping}") for j in jobs]
    event = normalise(d.body, dict(d.headers)) if d.body else None
    return DeliveryView(
        d,
        jobs,
        passed,
        problems or (tuple(event.problems) if event else ()),
        tuple(sorted(history, key=lambda h: h.at)),
        event.as_dict() if event else {},
        tuple(masked_headers(d.headers)),
        body_text(d.body) if d.body else "",
        can_replay=d.status == "ignored",
    )
