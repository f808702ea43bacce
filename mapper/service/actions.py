"""Operator actions as `wlmap replay|retry|cancel` and the console ask for them: through the store, never run here.

A replay is a request that a service process carries out (service.replays) with its own mappings and
environment, so the operator's shell needs no secret of any target; retry now and cancel change the job at
once, and the service's workers do the rest. Each is kept with who asked, which the event's history shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from mapper.service.history import short_reason, when
from mapper.service.operations import JOB_FILTERS, OpsError, parse_id, parse_since

if TYPE_CHECKING:
    from mapper.service.store import JobRow, Store

REPLAYABLE: Final = ("dead", "done", "skipped", "failed")  # what `--status` takes for a replay
WAIT: Final = 120.0  # seconds `wlmap replay` waits for the service to run what it asked for
POLL: Final = 0.2


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


@dataclass(frozen=True)
class Asked:
    """A replay asked for (`action`), or refused at once (`problem`)."""

    source: str
    before: str
    action: int | None = None
    problem: str | None = None


def describe(status: str, reason: str | None) -> str:
    return f"{status} ({reason})" if reason else status


def _job_words(job: JobRow) -> str:
    return describe(job.status, short_reason(job.last_reason, job.mapping_file) or None)


def targets(
    store: Store,
    ids: Sequence[str] = (),
    *,
    status: str | None = None,
    since: str | None = None,
    mapping: str | None = None,
) -> list[tuple[str, int]]:
    """What to replay: the ids given, then every job in `status` (dead when only --since or --mapping is given)
    received since then, of that mapping, oldest first."""
    chosen = [parse_id(ident) for ident in ids]
    if status is None and (since is not None or mapping is not None):
        status = "dead"
    if status is not None:
        if status not in REPLAYABLE:
            raise OpsError(f"--status {status!r}: replay takes {', '.join(REPLAYABLE[:-1])} or failed jobs")
        since_at = parse_since(since) if since else None
        found = store.jobs(statuses=JOB_FILTERS[status], mapping=mapping, since=since_at, limit=1_000_000)
        chosen += [("job", job.id) for job in sorted(found, key=lambda job: job.id)]
    return chosen


def ask_replay(store: Store, chosen: Sequence[tuple[str, int]], by: str) -> list[Asked]:
    """Ask the service to replay each target; what cannot be replayed is refused here at once."""
    from mapper.service.store import NewAction, StoreError

    asked: list[Asked] = []
    requests: list[tuple[int, NewAction]] = []
    for kind, number in chosen:
        source = f"job {number}" if kind == "job" else f"d{number}"
        try:
            if kind == "job":
                job = store.job(number).job
                if job.status in ("pending", "running", "retry"):
                    raise OpsError(f"job {number} is {job.status}: it still has work to do")
                action = NewAction("replay", by, job=number, was=_job_words(job))
            else:
                delivery = store.delivery(number)
                if delivery.status != "ignored":
                    raise OpsError(f"d{number} is {delivery.status}, not ignored: replay its jobs instead")
                action = NewAction("replay", by, delivery=number, was="ignored")
        except (OpsError, StoreError) as exc:
            asked.append(Asked(source, "", problem=str(exc)))
            continue
        requests.append((len(asked), action))
        asked.append(Asked(source, action.was))
    ids = store.request([action for _, action in requests]) if requests else []
    for (index, _), action_id in zip(requests, ids, strict=True):
        asked[index] = Asked(asked[index].source, asked[index].before, action=action_id)
    return asked


async def outcomes(
    store: Store,
    asked: Sequence[Asked],
    *,
    timeout: float = WAIT,
    poll: float = POLL,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[Replayed]:
    """Wait (up to `timeout`) until the service has carried out each request and run the jobs it made; one
    Replayed per job made, or per request refused or not carried out in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = [a.action for a in asked if a.action is not None]
    while True:
        settled = {row.id: row for row in store.actions(ids=pending)} if pending else {}
        made = [n for row in settled.values() if row.state == "done" for n in row.made]
        running = [n for n in made if store.job(n).job.status in ("pending", "running")]
        if (all(row.state != "requested" for row in settled.values()) and not running) or loop.time() >= deadline:
            break
        await sleep(poll)
    results: list[Replayed] = []
    for a in asked:
        if a.action is None:
            results.append(Replayed(a.source, None, "-", "", "", problem=a.problem))
            continue
        row = settled[a.action]
        if row.state == "requested":
            why = "the service has not carried it out yet: is it running? (`wlmap events show` tells later)"
            results.append(Replayed(a.source, None, "-", a.before, "", problem=why))
        elif row.state == "refused":
            results.append(Replayed(a.source, None, "-", a.before, "", problem=row.note))
        for number in row.made if row.state == "done" else ():
            job = store.job(number).job
            results.append(Replayed(a.source, number, job.mapping, a.before, _after(job)))
    return results


def _after(job: JobRow) -> str:
    if job.status in ("pending", "running"):
        return f"{job.status} (not run yet: the service runs it in its turn)"
    after = _job_words(job)
    if job.status == "retry":
        after += f"; the service tries again at {when(job.next_attempt_at)}"
    return after


async def replay(
    store: Store,
    ids: Sequence[str] = (),
    *,
    status: str | None = None,
    since: str | None = None,
    mapping: str | None = None,
    by: str,
    timeout: float = WAIT,
    poll: float = POLL,
) -> list[Replayed]:
    """Ask the service to replay stored webhooks with its CURRENT mappings, and wait for the outcomes."""
    chosen = targets(store, ids, status=status, since=since, mapping=mapping)
    if not chosen:
        return []
    return await outcomes(store, ask_replay(store, chosen, by), timeout=timeout, poll=poll)


def retry_now(store: Store, ident: str, by: str) -> str:
    """Make a job that waits to retry due now; a line saying what changed. OpsError when it cannot be."""
    from mapper.service.store import StoreError

    number = _job_number(ident)
    try:
        action = store.retry_now(number, by)
    except StoreError as exc:
        raise OpsError(str(exc)) from None
    return f"job {number}: {action.was} → due now; the service runs it as soon as a worker is free"


def cancel(store: Store, ident: str, by: str) -> str:
    """Park a waiting job as dead, "cancelled by operator"; a line saying what changed."""
    from mapper.service.store import CANCELLED, StoreError

    number = _job_number(ident)
    try:
        action = store.cancel(number, by)
    except StoreError as exc:
        raise OpsError(str(exc)) from None
    return f"job {number}: {action.was} → dead ({CANCELLED})"


def _job_number(ident: str) -> int:
    kind, number = parse_id(ident)
    if kind != "job":
        raise OpsError(f"{ident} is a stored webhook: retry and cancel take a job (12)")
    return number
