"""Operator actions in the store: replay, retry now and cancel, each kept as a row that is also the event's history.

Retry now and cancel change the job at once, in the same transaction as their row: the service's workers then
take (or no longer take) the job as they take any other. A replay needs the service (its mappings, its
environment): the row waits as `requested` until a service process carries it out, and that process makes the
new pending job in the same transaction that settles the row, so that two processes never both carry out one
request and a request never makes a job twice. The workers then run the replay in its turn, as any job.

    requested ──carried out──▶ done (made: the new jobs) | refused (note: why)
    retry / cancel: done or refused at once
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from mapper.service.store import rows, sql
from mapper.service.store.dialect import SqlDialect
from mapper.service.store.interface import Tx
from mapper.service.store.operator import CANCELLED, ActionRow, NewAction, NotPossible
from mapper.service.store.records import ACTIVE, NewJob, NotFound, NotReplayable

_COLUMNS: Final = "id, kind, job, delivery, requested_by, requested_at, state, was, note, made, settled_at"
INSERT: Final = (
    "INSERT INTO actions (kind, job, delivery, requested_by, requested_at, state, was, note, made, settled_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
REQUESTED: Final = f"SELECT {_COLUMNS} FROM actions WHERE state = 'requested' ORDER BY id LIMIT ?"
SETTLE: Final = "UPDATE actions SET state = ?, note = ?, made = ?, settled_at = ? WHERE id = ? AND state = 'requested'"
BY_IDS: Final = f"SELECT {_COLUMNS} FROM actions WHERE id IN ({{marks}}) ORDER BY id"
OF_JOBS: Final = f"SELECT {_COLUMNS} FROM actions WHERE job IN ({{marks}}) ORDER BY id"
OF_DELIVERY: Final = f"SELECT {_COLUMNS} FROM actions WHERE delivery = ? ORDER BY id"
JOB_STATE: Final = (
    "SELECT j.status, j.next_attempt_at, j.last_reason, "
    "(SELECT MIN(e.id) FROM jobs e WHERE e.mapping = j.mapping AND e.resource_key = j.resource_key "
    f"AND e.id < j.id AND e.status IN {sql.ACTIVE_IN}) FROM jobs j WHERE j.id = ?"
)
RETRY_NOW: Final = "UPDATE jobs SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND status IN ('retry', 'pending')"
CANCEL: Final = (
    "UPDATE jobs SET status = 'dead', last_reason = ?, lease_until = NULL, updated_at = ? "
    "WHERE id = ? AND status IN ('pending', 'retry')"
)


def _action(row: Sequence[Any]) -> ActionRow:
    made = tuple(int(part) for part in json.loads(row[9])) if row[9] else ()
    settled = None if row[10] is None else float(row[10])
    return ActionRow(int(row[0]), row[1], row[2], row[3], row[4], float(row[5]), row[6], row[7], row[8], made, settled)


def _status_words(status: str, reason: str | None) -> str:
    return f"{status} ({reason})" if reason else status


class Actions(SqlDialect):
    """Operator actions for SqlStore (see the module docstring)."""

    # ------------------------------------------------------------------------------ asking

    def request(self, actions: Sequence[NewAction]) -> list[int]:
        """Record replay requests for the service to carry out; their ids, in order."""

        def op(tx: Tx) -> list[int]:
            now = self.clock()
            return [
                int(
                    self._one(
                        tx,
                        INSERT,
                        (a.kind, a.job, a.delivery, rows.storable(a.by), now, "requested", a.was, None, None, None),
                    )[0]
                )
                for a in actions
            ]

        return self._write(op).result()

    def retry_now(self, job: int, by: str) -> ActionRow:
        """Make a job that waits for its next try due now; NotFound, or NotPossible saying why not."""

        def op(tx: Tx) -> ActionRow:
            now = self.clock()
            status, due, reason, blocker = self._job_state(tx, job)
            if status == "pending" and blocker is not None:
                raise NotPossible(
                    f"job {job} is waiting behind job {blocker} for the same resource: "
                    f"job {blocker} must finish (or be cancelled) first"
                )
            if status == "pending" or (status == "retry" and float(due) <= now):
                raise NotPossible(f"job {job} is due already: a worker takes it as soon as one is free")
            if status != "retry":
                raise NotPossible(_not_waiting(job, status, "retry"))
            self._run(tx, RETRY_NOW, (now, now, job))
            action = NewAction("retry", by, job=job, was=_status_words(status, reason))
            return self._settled(tx, action, now, "due now", ())

        return self._write(op).result()

    def cancel(self, job: int, by: str) -> ActionRow:
        """Park a job that waits (pending or retry) as dead, "cancelled by operator"; NotPossible otherwise."""

        def op(tx: Tx) -> ActionRow:
            now = self.clock()
            status, _, reason, _ = self._job_state(tx, job)
            if status not in ("pending", "retry"):
                raise NotPossible(_not_waiting(job, status, "cancel"))
            self._run(tx, CANCEL, (CANCELLED, now, job))
            action = NewAction("cancel", by, job=job, was=_status_words(status, reason))
            return self._settled(tx, action, now, CANCELLED, ())

        return self._write(op).result()

    def _job_state(self, tx: Tx, job: int) -> tuple[str, float, str | None, int | None]:
        found = self._one(tx, JOB_STATE, (job,))
        if found is None:
            raise NotFound(f"there is no job {job}")
        return str(found[0]), float(found[1]), found[2], found[3]

    def _settled(self, tx: Tx, a: NewAction, now: float, note: str, made: Sequence[int]) -> ActionRow:
        values = (a.kind, a.job, a.delivery, rows.storable(a.by), now, "done", a.was, note, json.dumps(list(made)), now)
        action_id = int(self._one(tx, INSERT, values)[0])
        return _action(self._one(tx, BY_IDS.format(marks="?"), (action_id,)))

    # ------------------------------------------------------------------------------ carrying out

    def requested(self, limit: int = 20) -> list[ActionRow]:
        """Requests no service has carried out yet, oldest first."""
        return [_action(row) for row in self._read(lambda tx: self._all(tx, REQUESTED, (limit,)))]

    def carry_out_replay(self, action: int, mapping_file: str | None = None) -> int | None:
        """Settle a replay request of a job with a new pending job for the workers; its id, or None when another
        process carried it out first. NotFound or NotReplayable (nothing changed) when the job cannot be replayed."""

        def op(tx: Tx) -> int | None:
            now = self.clock()
            found = self._one(tx, BY_IDS.format(marks="?"), (action,))
            if found is None or found[6] != "requested" or found[2] is None:
                return None
            made = self._replay(tx, int(found[2]), now, mapping_file)
            if self._run(tx, SETTLE, ("done", f"made job {made}", json.dumps([made]), now, action)).rowcount != 1:
                raise _Lost  # settled meanwhile by another process: undo the job made here
            return made

        try:
            return self._write(op).result()
        except _Lost:
            return None

    def carry_out_reroute(self, action: int, jobs: Sequence[NewJob]) -> list[int] | None:
        """Settle a replay request of an ignored delivery with pending jobs for the mappings that now want it;
        their ids, or None when another process carried it out first."""

        def op(tx: Tx) -> list[int] | None:
            now = self.clock()
            found = self._one(tx, BY_IDS.format(marks="?"), (action,))
            if found is None or found[6] != "requested" or found[3] is None:
                return None
            made = self._reroute(tx, int(found[3]), jobs, now)
            note = "made " + ", ".join(f"job {n}" for n in made)
            if self._run(tx, SETTLE, ("done", note, json.dumps(made), now, action)).rowcount != 1:
                raise _Lost
            return made

        try:
            return self._write(op).result()
        except _Lost:
            return None

    def refuse(self, action: int, why: str) -> bool:
        """Settle a request as refused, saying why; False when it was settled already."""

        def op(tx: Tx) -> bool:
            values = ("refused", rows.reason(why), None, self.clock(), action)
            return self._run(tx, SETTLE, values).rowcount == 1

        return self._write(op).result()

    def _replay(self, tx: Tx, job: int, now: float, mapping_file: str | None) -> int:
        delivery, new, status = self._replay_of(tx, job, mapping_file)
        new_id = self._new_job(tx, delivery, new, now, job)
        if status == "dead":  # parked no more: the replay carries it on
            self._run(tx, sql.MARK_REPLAYED, (new_id, now, job))
        return new_id

    def _replay_of(self, tx: Tx, job: int, mapping_file: str | None) -> tuple[int, NewJob, str]:
        """(delivery, the job a replay makes, the old job's status); NotFound or NotReplayable when there is none
        or it still has work to do. Operator replays and the service's own replays (`SqlStore.replay`) share it."""
        row = self._one(tx, sql.JOB_FOR_REPLAY, (job,))
        if row is None:
            raise NotFound(f"there is no job {job}")
        delivery, mapping, old_file, resource_key, status = row
        if status in ACTIVE:
            raise NotReplayable(f"job {job} is {status}: it still has work to do")
        return delivery, NewJob(mapping, resource_key, mapping_file or old_file), status

    def _check_ignored(self, tx: Tx, delivery: int) -> None:
        """Only an ignored delivery is routed again (its jobs are replayed instead)."""
        row = self._one(tx, sql.DELIVERY_STATUS, (delivery,))
        if row is None:
            raise NotFound(f"there is no delivery d{delivery}")
        if row[0] != "ignored":
            raise NotReplayable(f"delivery d{delivery} is {row[0]}, not ignored: replay its jobs instead")

    def _reroute(self, tx: Tx, delivery: int, jobs: Sequence[NewJob], now: float) -> list[int]:
        self._check_ignored(tx, delivery)
        self._run(tx, sql.ACCEPT_DELIVERY, (delivery,))
        return [self._new_job(tx, delivery, job, now, None) for job in jobs]

    def _new_job(self, tx: Tx, delivery: int, job: NewJob, now: float, replay_of: int | None) -> int:
        """A pending job, due now, that the workers take in its turn (after the earlier jobs of its resource)."""
        resource = rows.storable(job.resource_key)
        values = (
            delivery,
            job.mapping,
            job.mapping_file,
            resource,
            "pending",
            0,
            now,
            None,
            0,
            replay_of,
            now,
            now,
            None,
        )
        return int(self._one(tx, sql.INSERT_JOB, values)[0])

    # ------------------------------------------------------------------------------ reading

    def actions(
        self, *, ids: Sequence[int] = (), jobs: Sequence[int] = (), delivery: int | None = None
    ) -> list[ActionRow]:
        """Actions by id, on these jobs, or on this delivery; oldest first."""

        def op(tx: Tx) -> list[Any]:
            if ids:
                return self._all(tx, BY_IDS.format(marks=sql.marks(len(ids))), tuple(ids))
            if jobs:
                return self._all(tx, OF_JOBS.format(marks=sql.marks(len(jobs))), tuple(jobs))
            if delivery is not None:
                return self._all(tx, OF_DELIVERY, (delivery,))
            return []

        return [_action(row) for row in self._read(op)]


class _Lost(Exception):
    """A request was settled by another process between reading and settling it: roll back."""


def _not_waiting(job: int, status: str, verb: str) -> str:
    if status == "running":
        return f"job {job} is running now: {verb} it once this attempt has ended"
    if status == "dead":
        return f"job {job} is dead: it has no tries left; replay it to run it again"
    return f"job {job} is {status}: it is not waiting, so there is nothing to {verb}; replay it to run it again"
