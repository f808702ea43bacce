"""Schedules' due times in SQL: each due time fires once (a job on a delivery of its own), for both dialects.

Looking at a schedule (`fire_schedule`) is one transaction on its row: PostgreSQL takes the row (FOR UPDATE),
so replicas looking at once take turns, and the one that comes second finds the due time moved on. The
primary key of `schedule_runs` (mapping, due time) and the unique delivery id `schedule-<mapping>-<time>` are
the backstops: a due time can never have two runs.

A mapping seen for the first time is due at its next time (no run for the past). Due times that passed while
no wlmap was running (more than GRACE seconds late) are missed: `run_once` runs once, with the latest missed
time as `until` and the previous run's time as `since` (so the run covers the whole gap), `skip` runs nothing.
A changed cron expression starts afresh from now.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from mapper.service.store import bucket_sql as sql
from mapper.service.store.bucket_records import Fired, MissedRuns, ScheduledRun
from mapper.service.store.buckets import SqlBuckets
from mapper.service.store.records import NewJob

Step = Callable[[float], float]  # a moment → the schedule's next (or previous) time strictly after (before) it

GRACE: Final = 60.0  # seconds late a due time may be found and still count as on time (not missed)
MAX_COUNTED: Final = 1000  # missed due times counted one by one at most (a minutely schedule down for a month)


class SqlSchedules(SqlBuckets):
    """The schedule half of `base.SqlStore` (a mixin, on top of the bucket half)."""

    def fire_schedule(
        self,
        mapping: str,
        mapping_file: str,
        cron: str,
        next_after: Step,
        previous: Step,
        missed: MissedRuns = "run_once",
        grace: float = GRACE,
    ) -> Fired:
        """Fire the schedule's due time if it has come (once, whoever else looks at the same time); a due time
        found more than `grace` seconds late was missed."""

        def op(tx: Any) -> Fired:
            now = self.clock()
            row = self._one(tx, sql.SCHEDULE + self._row_lock(False), (mapping,))
            if row is None:
                first = next_after(now)
                self._run(tx, sql.INSERT_SCHEDULE, (mapping, cron, first, now))
                return Fired(None, first)
            known, last_due, next_due = row[0], row[1], float(row[2])
            if known != cron:
                following = next_after(now)
                self._run(tx, sql.MOVE_SCHEDULE, (cron, last_due, following, now, mapping))
                return Fired(None, following)
            if next_due > now:
                return Fired(None, next_due)
            due, passed = next_due, 0
            while (following := next_after(due)) <= now and passed < MAX_COUNTED:
                due, passed = following, passed + 1
            if following <= now:  # more than MAX_COUNTED passed: jump to the latest
                due = previous(now)
                following = next_after(due)
            late = passed > 0 or now - due > grace
            self._run(tx, sql.MOVE_SCHEDULE, (cron, due, following, now, mapping))
            if late and missed == "skip":
                return Fired(None, following, skipped=passed + 1)
            since = float(last_due) if last_due is not None else previous(due)
            run = ScheduledRun(mapping, since, due, passed + 1 if late else 0, 0)
            job, delivery = self._scheduled_job(tx, mapping, mapping_file, run, now)
            return Fired(job, following, run=ScheduledRun(mapping, since, due, run.missed, delivery))

        return self._write(op).result()

    def _scheduled_job(
        self, tx: Any, mapping: str, mapping_file: str, run: ScheduledRun, now: float
    ) -> tuple[int, int]:
        until = _iso(run.until)
        words = f", covering {run.missed} due time(s) missed while wlmap was not running" if run.missed else ""
        delivery_row = self._internal_delivery(
            tx,
            {"schedule": mapping, "since": None if run.since is None else _iso(run.since), "until": until},
            ("schedule", mapping, until),
            f"schedule of {mapping} at {until}{words}",
            now,
        )
        self._run(tx, sql.INSERT_RUN, (mapping, run.until, run.since, run.missed, delivery_row))
        return self._insert_job(tx, delivery_row, NewJob(mapping, None, mapping_file), now), delivery_row

    def scheduled_run(self, delivery: int) -> ScheduledRun | None:
        """The scheduled run the delivery carries; None for any other delivery."""
        row = self._read(lambda tx: self._one(tx, sql.RUN_BY_DELIVERY, (delivery,)))
        if row is None:
            return None
        mapping, since, until, missed, found = row
        return ScheduledRun(mapping, None if since is None else float(since), float(until), int(missed), int(found))

    def next_scheduled(self) -> float | None:
        """The earliest next due time of any schedule the store knows."""
        row = self._read(lambda tx: self._one(tx, sql.NEXT_SCHEDULED))
        return None if row is None or row[0] is None else float(row[0])


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
