"""Operator commands over the store: list events, ask for replays (service.actions), prune old ones, send a
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
from typing import TYPE_CHECKING, Any, Final

from mapper.service.history import when as when
from mapper.service.options import STORE_ENV, secrets_from
from mapper.service.signature import SignatureScheme, sign

# The store is imported where it is used: every `wlmap` command (validate too) may import this module.

if TYPE_CHECKING:
    from mapper.service.actions import Replayed
    from mapper.service.store import DeliveryLine, JobLine, Page, Store

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


def parse_since(text: str, option: str = "--since") -> float:
    """An ISO 8601 date or time (UTC unless it says otherwise) as seconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise OpsError(f"{option} {text!r} is not an ISO 8601 time, e.g. 2024-05-01T10:00:00Z") from None
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
    """One row of `wlmap events list` and of the console's events page."""

    id: str
    received: float
    mapping: str
    status: str
    attempts: int
    resource: str
    reason: str
    summary: str = ""
    made: float = 0.0  # when the job was made (the webhook's arrival, or the replay), the order of a page


@dataclass(frozen=True)
class Filters:
    """What an events list shows; `status` is one of STATUSES."""

    status: str | None = None
    mapping: str | None = None
    resource: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class EventsPage:
    """A page of events, newest first; `older`: the cursor of the next page (None: there is none);
    `searched`: a text search looked at only part of the events (the next page goes on below)."""

    lines: tuple[EventLine, ...]
    older: str | None
    searched: bool = False


def _job_line(job: "JobLine", now: float) -> EventLine:
    from mapper.service.history import line_reason

    return EventLine(
        str(job.id),
        job.received_at,
        job.mapping,
        job.status,
        job.attempts,
        job.resource_key or "-",
        line_reason(job, now),
        job.summary,
        job.created_at,
    )


def _delivery_line(delivery: "DeliveryLine") -> EventLine:
    reason = delivery.summary if delivery.status != "duplicate" else f"duplicate of d{delivery.duplicate_of}"
    if delivery.status == "accepted":
        reason = delivery.summary
    return EventLine(
        f"d{delivery.id}",
        delivery.received_at,
        "-",
        delivery.status,
        0,
        "-",
        reason,
        delivery.summary,
        delivery.received_at,
    )


def _cursor(text: str | None) -> tuple[int | None, int | None]:
    """("j120.d45") → (120, 45): the ids each source goes on below; 0 means that source is done."""
    if not text:
        return None, None
    match = re.fullmatch(r"j(\d+)\.d(\d+)", text.strip())
    if match is None:
        raise OpsError(f"{text!r} is not a page of events")
    return int(match.group(1)), int(match.group(2))


def events_page(
    store: "Store", filters: Filters = Filters(), *, older: str | None = None, limit: int = 50
) -> EventsPage:
    """Jobs (and ignored webhooks, unless a mapping or resource is asked for) newest first, `limit` at most,
    below the cursor `older`; keyset pages (store.pages) that stay fast however many events there are."""
    from mapper.service.store import EventQuery

    status = filters.status
    if status is not None and status not in STATUSES:
        raise OpsError(f"--status {status!r} is not one of: {', '.join(STATUSES)}")
    before_job, before_delivery = _cursor(older)
    query = EventQuery(
        statuses=JOB_FILTERS.get(status or "", ()),
        mapping=filters.mapping,
        resource=filters.resource,
        since=filters.since,
        until=filters.until,
        text=filters.text or None,
    )
    now = store.clock()
    candidates: list[tuple[str, EventLine]] = []
    jobs = deliveries = None
    if (status is None or status in JOB_FILTERS) and before_job != 0:
        jobs = store.jobs_page(query, before_job, limit)
        candidates += [("j", _job_line(job, now)) for job in jobs.rows]
    wanted = (status,) if status in DELIVERY_FILTERS else ("ignored",) if status is None else ()
    if wanted and filters.mapping is None and filters.resource is None and before_delivery != 0:
        deliveries = store.deliveries_page(wanted, query, before_delivery, limit)
        candidates += [("d", _delivery_line(d)) for d in deliveries.rows]
    candidates.sort(key=lambda pair: (pair[1].made, pair[0] == "j", int(pair[1].id.lstrip("d"))), reverse=True)
    taken = candidates[:limit]
    next_job = _next(jobs, [int(line.id) for kind, line in taken if kind == "j"], before_job)
    next_delivery = _next(deliveries, [int(line.id[1:]) for kind, line in taken if kind == "d"], before_delivery)
    searched = any(page is not None and page.searched_to is not None for page in (jobs, deliveries))
    more = next_job != 0 or next_delivery != 0
    cursor = f"j{next_job if next_job is not None else 0}.d{next_delivery if next_delivery is not None else 0}"
    return EventsPage(tuple(line for _, line in taken), cursor if more else None, searched)


def _next(page: "Page[Any] | None", taken: list[int], before: int | None) -> int | None:
    """Where a source goes on: below the last row taken; below its search window; or 0 when it is done."""
    if page is None:
        return 0
    if len(taken) < len(page.rows):
        return min(taken) if taken else (before if before is not None else page.rows[0].id + 1)
    if page.searched_to is not None:
        return page.searched_to
    if page.more:
        return min(taken)
    return 0


def list_events(
    store: "Store", *, status: str | None = None, mapping: str | None = None, limit: int = 50, **more: Any
) -> list[EventLine]:
    """Jobs (and ignored deliveries when no mapping is asked for), newest first."""
    return list(events_page(store, Filters(status=status, mapping=mapping, **more), limit=limit).lines)


async def replay(
    store: "Store",
    ids: Sequence[str] = (),
    *,
    status: str | None = None,
    since: str | None = None,
    mapping: str | None = None,
    by: str,
    timeout: float | None = None,
) -> "list[Replayed]":
    """Ask the service to replay stored webhooks with its CURRENT mappings and wait for the outcomes
    (service.actions)."""
    from mapper.service import actions

    return await actions.replay(
        store,
        ids,
        status=status,
        since=since,
        mapping=mapping,
        by=by,
        timeout=actions.WAIT if timeout is None else timeout,
    )


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
