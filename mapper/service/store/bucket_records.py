"""The plain values of buckets and schedules: what goes into the store and what comes out.

A bucket's life (one bucket = the items of one `group_by` value of one collecting mapping, until it closes):

    open ──an item (the webhook's own transaction, or its collect job's)──▶ open ...
      └──a rule holds (count, window, idle, at, until), a limit is reached, or an operator closes it──▶ closed
    closed: its run is an ordinary job on a delivery of its own (trace, retries, dead, replay), created in the
    transaction that closed it.

A schedule's due times: each fires once (a job on a delivery of its own), or is skipped after downtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

MissedRuns = Literal["run_once", "skip"]


@dataclass(frozen=True)
class Rules:
    """A collecting mapping's closing rules and limits, as numbers and the words each one is recorded with."""

    count: int | None = None
    window: float | None = None  # seconds after the first item
    idle: float | None = None  # seconds after the last item
    at: float | None = None  # the `at` time that closes a bucket opened now (seconds since the epoch)
    until: bool = False  # the mapping has an `until` condition: check it after each item
    max_items: int = 1000
    max_open: int = 10_000
    words: dict[str, str] = field(default_factory=dict)  # rule or limit → the reason recorded when it closes


@dataclass(frozen=True)
class NewItem:
    """One event's values for its bucket; `group` and `value` are JSON text, `distinct` replaces an equal key."""

    mapping: str
    mapping_file: str
    group: str
    value: str
    distinct: str | None
    rules: Rules


@dataclass(frozen=True)
class Placed:
    """Where an item went: its bucket, whether it was there already, and the buckets its placing closed."""

    bucket: int
    already: bool = False
    closed: tuple[int, ...] = ()


@dataclass(frozen=True)
class BucketRow:
    """A bucket as listed for operators."""

    id: int
    mapping: str
    mapping_file: str
    group: Any
    status: Literal["open", "closed"]
    opened_at: float
    last_item_at: float
    items: int
    bytes: int
    due_at: float | None  # when a time rule closes it (open buckets)
    due_reason: str | None
    checks_until: bool
    closed_at: float | None
    reason: str | None  # why it closed
    delivery: int | None  # the stored delivery its run belongs to
    job: int | None  # the job created when it closed


@dataclass(frozen=True)
class BucketItem:
    position: int
    source: int  # the delivery the item came from
    value: Any
    added_at: float


@dataclass(frozen=True)
class BucketDetail:
    """A bucket with its items, in the order they came."""

    bucket: BucketRow
    items: tuple[BucketItem, ...]


@dataclass(frozen=True)
class ScheduledRun:
    """One due time of a schedule that fired: the run's `since` and `until`, and how many times it stands for."""

    mapping: str
    since: float | None
    until: float
    missed: int  # due times that passed while no wlmap was running and are covered by this run
    delivery: int


@dataclass(frozen=True)
class Fired:
    """What looking at a schedule did: a job for a due time, due times skipped, and when it is due next."""

    job: int | None
    next_due: float
    skipped: int = 0
    run: ScheduledRun | None = None
