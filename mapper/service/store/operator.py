"""What operators read from and ask of the store: the records, and the interface every store offers for them.

The events pages (`pages.Pages`) and the operator actions with their history (`actions.Actions`) implement it
for the SQL stores; `interface.Store` includes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

from mapper.service.store.records import NewJob, StoreError

T = TypeVar("T")

SEARCH_WINDOW: Final = 50_000  # rows a free-text search looks at per page (store.pages)
ActionKind = Literal["replay", "retry", "cancel"]
ActionState = Literal["requested", "done", "refused"]
CANCELLED: Final = "cancelled by operator"


class NotPossible(StoreError):
    """The job is not in a state this action applies to; the message says why and what to do instead."""


@dataclass(frozen=True)
class NewAction:
    """A request: replay a job or an ignored delivery (`delivery`), or retry or cancel a job."""

    kind: ActionKind
    by: str  # who asked: the OS user for the CLI, the console user
    job: int | None = None
    delivery: int | None = None
    was: str = ""  # the job's (or delivery's) status and reason when asked, for "before → after"


@dataclass(frozen=True)
class ActionRow:
    """One action as the history shows it."""

    id: int
    kind: str
    job: int | None
    delivery: int | None
    requested_by: str
    requested_at: float
    state: str
    was: str | None
    note: str | None
    made: tuple[int, ...]
    settled_at: float | None


@dataclass(frozen=True)
class EventQuery:
    """What an events page shows: every filter is optional; `statuses` are job statuses."""

    statuses: tuple[str, ...] = ()
    mapping: str | None = None
    resource: str | None = None
    since: float | None = None  # the job was made (its webhook received, or the replay asked) at or after
    until: float | None = None  # ... and before this
    text: str | None = None  # in the reason, the webhook's summary, the resource or the delivery id


@dataclass(frozen=True)
class JobLine:
    """A job as an events page lists it, with what it needs to say why it waits."""

    id: int
    delivery: int
    received_at: float
    created_at: float
    mapping: str
    mapping_file: str
    resource_key: str | None
    status: str
    attempts: int
    next_attempt_at: float
    max_attempts: int | None
    last_reason: str | None
    replay_of: int | None
    superseded_by: int | None
    summary: str
    waiting_behind: int | None  # a pending job: the earlier job of its mapping and resource it waits for


@dataclass(frozen=True)
class DeliveryLine:
    """A stored webhook as an events page lists it."""

    id: int
    received_at: float
    delivery_id: str | None
    status: str
    summary: str
    duplicate_of: int | None
    notes: str | None


@dataclass(frozen=True)
class Page(Generic[T]):
    """Rows newest first; `more`: older rows match too; `searched_to`: a text search looked no further down
    than this id (older rows are not searched yet: ask for the page before it)."""

    rows: tuple[T, ...]
    more: bool
    searched_to: int | None = None


class OperatorStore(ABC):
    """Pages for operators, the figures of the console's overview, and operator actions."""

    @abstractmethod
    def jobs_page(self, query: EventQuery, before: int | None = None, limit: int = 50) -> Page[JobLine]:
        """Up to `limit` jobs with ids below `before` (the newest when None) that match `query`."""

    @abstractmethod
    def deliveries_page(
        self, statuses: Sequence[str], query: EventQuery, before: int | None = None, limit: int = 50
    ) -> Page[DeliveryLine]:
        """Up to `limit` stored webhooks in `statuses` with ids below `before`, matching the query's time and text."""

    @abstractmethod
    def made_since(self, since: float) -> dict[str, dict[str, int]]:
        """Jobs made since then, by mapping and current status."""

    @abstractmethod
    def dead_by_mapping(self) -> dict[str, int]:
        """Dead jobs (dead letters) by mapping."""

    @abstractmethod
    def oldest_pending(self) -> tuple[int, float] | None:
        """The pending job that has waited longest, and when it was made; None when none waits."""

    @abstractmethod
    def request(self, actions: Sequence[NewAction]) -> list[int]:
        """Record replay requests for the service to carry out; their ids, in order."""

    @abstractmethod
    def retry_now(self, job: int, by: str) -> ActionRow:
        """Make a job that waits for its next try due now; NotFound, or NotPossible saying why not."""

    @abstractmethod
    def cancel(self, job: int, by: str) -> ActionRow:
        """Park a job that waits (pending or retry) as dead, "cancelled by operator"; NotPossible otherwise."""

    @abstractmethod
    def requested(self, limit: int = 20) -> list[ActionRow]:
        """Requests no service has carried out yet, oldest first."""

    @abstractmethod
    def carry_out_replay(self, action: int, mapping_file: str | None = None) -> int | None:
        """Settle a replay request of a job with a new pending job for the workers; its id, or None when another
        process carried it out first. NotFound or NotReplayable (nothing changed) when the job cannot be replayed."""

    @abstractmethod
    def carry_out_reroute(self, action: int, jobs: Sequence[NewJob]) -> list[int] | None:
        """Settle a replay request of an ignored delivery with pending jobs for the mappings that now want it;
        their ids, or None when another process carried it out first."""

    @abstractmethod
    def refuse(self, action: int, why: str) -> bool:
        """Settle a request as refused, saying why; False when it was settled already."""

    @abstractmethod
    def actions(
        self, *, ids: Sequence[int] = (), jobs: Sequence[int] = (), delivery: int | None = None
    ) -> list[ActionRow]:
        """Actions by id, on these jobs, or on this delivery; oldest first."""
