"""What a store offers for collecting and scheduled mappings: buckets and schedules (`Store` includes it).

`buckets.SqlBuckets` and `schedules.SqlSchedules` implement it in SQL for both dialects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from mapper.service.store.bucket_records import (
    BucketDetail,
    BucketRow,
    Fired,
    MissedRuns,
    NewItem,
    Placed,
    ScheduledRun,
)

Until = Callable[[str, Any, list[Any]], str | None]  # (mapping, group, items) → the reason to close, or None
Step = Callable[[float], float]


class Collecting(ABC):
    """Buckets (items in, closed with their job) and schedules (each due time fired once)."""

    @abstractmethod
    def collect(self, job: int, token: int, source: int, item: NewItem, trace: str) -> Placed:
        """Finish a collect job and put its item in its bucket, in one transaction (FencedOut: not this token's)."""

    @abstractmethod
    def close_due(self, limit: int, until: Until) -> list[int]:
        """Close buckets whose time rule is due or whose `until` now holds; the jobs created."""

    @abstractmethod
    def has_buckets_to_close(self) -> bool:
        """Whether `close_due` would find work now."""

    @abstractmethod
    def close_bucket(self, bucket: int, reason: str) -> int:
        """Close one bucket now; its job."""

    @abstractmethod
    def bucket_for(self, delivery: int) -> BucketDetail | None:
        """The bucket whose run the delivery carries, with its items."""

    @abstractmethod
    def bucket(self, bucket: int) -> BucketDetail:
        """One bucket with its items; NotFound if there is none."""

    @abstractmethod
    def buckets(self, *, status: str | None = None, mapping: str | None = None, limit: int = 100) -> list[BucketRow]:
        """Buckets, newest first."""

    @abstractmethod
    def next_bucket_due(self) -> float | None:
        """When the next open bucket's time rule falls due."""

    @abstractmethod
    def open_buckets(self) -> dict[str, tuple[int, int]]:
        """Per mapping: open buckets and the items in them."""

    @abstractmethod
    def prune_buckets(self) -> int:
        """Delete closed buckets whose run was pruned."""

    @abstractmethod
    def fire_schedule(
        self,
        mapping: str,
        mapping_file: str,
        cron: str,
        next_after: Step,
        previous: Step,
        missed: MissedRuns = ...,
        grace: float = ...,
    ) -> Fired:
        """Fire the schedule's due time once if it has come."""

    @abstractmethod
    def scheduled_run(self, delivery: int) -> ScheduledRun | None:
        """The scheduled run the delivery carries."""

    @abstractmethod
    def next_scheduled(self) -> float | None:
        """The earliest next due time of any schedule."""
