"""The plain values that go into and come out of the store: deliveries, jobs, attempts and their states.

A job's life (one job = one mapping run for one stored webhook):

    pending ──claim──▶ running ──finish──▶ done | skipped | dead
       │                  │  └────finish──▶ retry ──(next_attempt_at)──claim──▶ running ...
       │                  ├──release (shutdown)──▶ pending
       │                  └──lease expired (a cut attempt)──▶ running again at once, alone (a new token fences
       │                        the old owner out) | retry after Cuts.waits | dead after Cuts.limit cuts
       └──a newer event for the same mapping and resource──▶ coalesced
    done | skipped | dead ──replay──▶ replayed (a new job runs the current mapping)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from mapper.service.store.bucket_records import NewItem

DeliveryStatus = Literal["accepted", "ignored", "duplicate"]
JobStatus = Literal["pending", "running", "retry", "done", "skipped", "dead", "coalesced", "replayed"]
FinishStatus = Literal["done", "skipped", "retry", "dead"]

DELIVERY_STATUSES: Final[tuple[str, ...]] = ("accepted", "ignored", "duplicate")
JOB_STATUSES: Final[tuple[str, ...]] = (
    "pending",
    "running",
    "retry",
    "done",
    "skipped",
    "dead",
    "coalesced",
    "replayed",
)
ACTIVE: Final[tuple[str, ...]] = ("pending", "running", "retry")  # a job that still has work to do
FINISHED: Final[tuple[str, ...]] = ("done", "skipped", "dead", "coalesced", "replayed")
# What pruning removes unless told otherwise: finished jobs but the dead, and webhooks that made no job. Dead
# jobs wait for an operator (replay, or `wlmap prune --status dead`).
PRUNED: Final[tuple[str, ...]] = ("done", "skipped", "coalesced", "replayed", "ignored", "duplicate")
PRUNABLE: Final[tuple[str, ...]] = (*PRUNED, "dead")

Headers = tuple[tuple[str, str], ...]


class StoreError(Exception):
    """The store cannot be used; the message says why in plain words."""


class StoreUnavailable(StoreError):
    """The store cannot write now (disk full, read-only, locked): answer 503 and let the sender retry."""


class NotFound(StoreError):
    """No delivery or job has that id."""


class NotReplayable(StoreError):
    """The job still has work to do, so it cannot be replayed yet."""


@dataclass(frozen=True)
class NewDelivery:
    """One verified webhook as received: what `Store.ingest` writes before the 2xx."""

    headers: Headers
    body: bytes
    body_sha256: str
    delivery_id: str | None  # X-Scope-Webhook-Id, when the sender gave one
    dedupe_key: str  # for deliveries without an id: what identical re-sends share (topic + body hash)
    signature: Literal["verified", "unsigned", "internal"] = "verified"  # internal: a closed bucket, a schedule
    summary: str = ""  # short words for operators: "scenario_session/completed ScenarioSession U2Nl..."
    notes: str = ""  # an ignored webhook: why each mapping passed on it, and normalisation problems (JSON)


@dataclass(frozen=True)
class NewJob:
    """A mapping that wants the delivery; resource_key (None: no resource id) orders and coalesces runs."""

    mapping: str
    resource_key: str | None
    mapping_file: str = ""
    item: NewItem | None = None  # a collecting mapping: put this into its bucket instead of creating a job


@dataclass(frozen=True)
class Ingested:
    """What ingest did: the delivery's row id and status, the jobs it created and the jobs they superseded."""

    delivery: int
    status: DeliveryStatus
    duplicate_of: int | None = None
    jobs: tuple[int, ...] = ()
    coalesced: tuple[int, ...] = ()
    buckets: tuple[int, ...] = ()  # the buckets its items went into (collecting mappings)


@dataclass(frozen=True)
class Claimed:
    """A job leased to one worker; `token` must be shown to finish, extend or release it."""

    job: int
    token: int
    attempt: int  # 1 for the first run
    mapping: str
    mapping_file: str
    resource_key: str | None
    delivery: int
    delivery_id: str | None
    received_at: float
    headers: Headers
    body: bytes
    cuts: int = 0  # earlier attempts cut short (the process died or stalled): run this one alone

    @property
    def idempotency_key(self) -> str:
        """Stable across every retry of this job; the runner adds the step name and item index."""
        return f"wlmap-job-{self.job}"


@dataclass(frozen=True)
class Pruned:
    """What a prune removed, and the disk space given back to the operating system (SQLite)."""

    jobs: int = 0
    deliveries: int = 0
    freed_bytes: int = 0


@dataclass(frozen=True)
class Cuts:
    """What a claim does with a job whose attempt was cut short (its lease ran out without an outcome).

    A job that kills the process every time it runs would otherwise be reclaimed for ever, taking the jobs that
    run beside it down too. The nth cut waits waits[n-1] seconds (the last entry for later cuts) before the
    job runs again, alone in its worker; the `limit`-th cut parks it dead.
    """

    limit: int = 3
    waits: tuple[float, ...] = (0.0, 60.0)

    def wait(self, cuts: int) -> float:
        return self.waits[min(cuts, len(self.waits)) - 1] if self.waits else 0.0

    def scaled(self, time_scale: float) -> Cuts:
        """The waits divided by `time_scale` (tests compress minutes into moments)."""
        return Cuts(self.limit, tuple(wait / time_scale for wait in self.waits))


CUTS: Final = Cuts()  # three cuts and the job is dead; after the second it waits a minute


@dataclass(frozen=True)
class Finish:
    """The outcome of one attempt, as the store records it."""

    status: FinishStatus
    reason: str
    step: str | None = None
    trace: Mapping[str, Any] | str = field(default_factory=dict)  # str: JSON text from RunResult.trace_json
    next_attempt_at: float | None = None  # status "retry" only
    max_attempts: int | None = None  # status "retry": how many attempts the schedule allows ("attempt 3 of 8")


@dataclass(frozen=True)
class DeliveryRow:
    """A stored webhook delivery."""

    id: int
    received_at: float
    delivery_id: str | None
    status: DeliveryStatus
    signature: str
    summary: str
    body_sha256: str
    headers: Headers
    body: bytes
    duplicate_of: int | None
    notes: str | None = None  # see NewDelivery.notes


@dataclass(frozen=True)
class JobRow:
    """A job as listed for operators."""

    id: int
    delivery: int
    received_at: float
    mapping: str
    mapping_file: str
    resource_key: str | None
    status: JobStatus
    attempts: int
    next_attempt_at: float
    last_reason: str | None
    replay_of: int | None
    superseded_by: int | None
    created_at: float
    updated_at: float
    max_attempts: int | None = None  # a job in retry: the attempts its schedule allows


@dataclass(frozen=True)
class AttemptRow:
    """One run of a job: when, how it ended, why, and the runner's trace."""

    job: int
    number: int
    started_at: float
    finished_at: float | None
    status: str  # running | done | skipped | retry | dead | lost | released
    reason: str | None
    step: str | None
    trace: Mapping[str, Any] | None


@dataclass(frozen=True)
class JobDetail:
    """A job with its delivery and every attempt, oldest first."""

    job: JobRow
    delivery: DeliveryRow
    attempts: tuple[AttemptRow, ...]
