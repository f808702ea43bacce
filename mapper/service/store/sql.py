"""Every statement the store runs, in portable SQL with `?` placeholders (a dialect may rewrite them)."""

from __future__ import annotations

from typing import Final

ACTIVE_IN: Final = "('pending', 'running', 'retry')"

FIND_BY_DELIVERY_ID: Final = "SELECT id FROM deliveries WHERE delivery_id = ? AND status <> 'duplicate'"
# `{by_body}`: SQLite's planner would otherwise look NULL up in deliveries_by_delivery_id (every webhook without
# an id) instead of using the partial index on the body's key.
FIND_BY_DEDUPE_KEY: Final = (
    "SELECT id FROM deliveries{by_body} WHERE dedupe_key = ? AND delivery_id IS NULL AND status <> 'duplicate' "
    "AND received_at >= ? ORDER BY id DESC LIMIT 1"
)
INSERT_DELIVERY: Final = (
    "INSERT INTO deliveries (received_at, delivery_id, dedupe_key, body_sha256, signature, summary, headers, "
    "body, status, duplicate_of, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
INSERT_JOB: Final = (
    "INSERT INTO jobs (delivery, mapping, mapping_file, resource_key, status, attempts, next_attempt_at, "
    "lease_until, token, replay_of, created_at, updated_at, holder) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "RETURNING id"
)
INSERT_ATTEMPT: Final = "INSERT INTO attempts (job, number, token, started_at, status) VALUES (?, ?, ?, ?, 'running')"
# These two run once per webhook and per claim. They must use the partial indexes of active jobs: scanning every
# job of a status made them quadratic under a backlog (88 % of the SQLite writer's time in
# bench/service_load.py). `{by_resource}`/`{by_time}` are the dialect's index hints (SQLite's planner, without
# statistics, prefers jobs_by_status); `status IN ACTIVE_IN` states the partial indexes' own condition.
# Most webhooks are the first for their resource: looking first costs a third of an UPDATE that finds nothing.
ANY_TO_COALESCE: Final = (
    "SELECT 1 FROM jobs{by_resource} WHERE mapping = ? AND resource_key = ? AND status = 'pending' "
    f"AND attempts = 0 AND id < ? AND status IN {ACTIVE_IN} LIMIT 1"
)
COALESCE_OLDER: Final = (
    "UPDATE jobs{by_resource} SET status = 'coalesced', superseded_by = ?, last_reason = ?, updated_at = ? "
    "WHERE mapping = ? AND resource_key = ? AND status = 'pending' AND attempts = 0 AND id < ? "
    f"AND status IN {ACTIVE_IN} RETURNING id"
)
# Due, or running on an expired lease; and the first job with work to do for its mapping and resource.
# A running job's next_attempt_at is the time it became due, never later than now: the range term holds for
# every claimable job and lets the scan follow jobs_active_by_time in ORDER BY order (no sort).
CLAIMABLE: Final = (
    "SELECT j.id, j.status, j.cuts FROM jobs j{by_time} "
    f"WHERE j.status IN {ACTIVE_IN} AND j.next_attempt_at <= ? "
    "AND ((j.status IN ('pending', 'retry') AND j.next_attempt_at <= ?) "
    "OR (j.status = 'running' AND j.lease_until < ?)) "
    "AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.mapping = j.mapping AND e.resource_key = j.resource_key "
    f"AND e.id < j.id AND e.status IN {ACTIVE_IN}) "
    "ORDER BY j.next_attempt_at, j.id LIMIT ?"
)
LOSE_ATTEMPTS: Final = (
    "UPDATE attempts SET status = 'lost', finished_at = ?, reason = ? WHERE job = ? AND finished_at IS NULL"
)
TAKE_JOB: Final = (
    "UPDATE jobs SET status = 'running', token = token + 1, attempts = attempts + 1, lease_until = ?, "
    "holder = ?, updated_at = ? WHERE id = ? RETURNING token, attempts"
)
# A cut attempt (lease expired without an outcome): counted, then the job waits (retry), runs again or is dead.
COUNT_CUT: Final = "UPDATE jobs SET cuts = ?, last_reason = ?, updated_at = ? WHERE id = ?"
WAIT_AFTER_CUT: Final = (
    "UPDATE jobs SET status = 'retry', cuts = ?, next_attempt_at = ?, lease_until = NULL, last_reason = ?, "
    "updated_at = ? WHERE id = ?"
)
DEAD_AFTER_CUTS: Final = (
    "UPDATE jobs SET status = 'dead', cuts = ?, lease_until = NULL, last_reason = ?, updated_at = ? WHERE id = ?"
)
CLAIMED: Final = (
    "SELECT j.id, j.token, j.attempts, j.mapping, j.mapping_file, j.resource_key, d.id, d.delivery_id, "
    "d.received_at, d.headers, d.body, j.cuts FROM jobs j JOIN deliveries d ON d.id = j.delivery WHERE j.id = ?"
)
# Leases whose holder is provably gone (store.holders): expired now, so the next claim takes the job back.
HOLDERS: Final = "SELECT DISTINCT holder FROM jobs WHERE status = 'running' AND holder IS NOT NULL"
EXPIRE_HELD: Final = (
    "UPDATE jobs SET lease_until = ? WHERE status = 'running' AND holder = ? AND lease_until >= ? RETURNING id"
)
EXTEND: Final = "UPDATE jobs SET lease_until = ?, updated_at = ? WHERE id = ? AND token = ? AND status = 'running'"
FINISH_JOB: Final = (
    "UPDATE jobs SET status = ?, last_reason = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
    "max_attempts = COALESCE(?, max_attempts), lease_until = NULL, updated_at = ? "
    "WHERE id = ? AND token = ? AND status = 'running'"
)
FINISH_ATTEMPT: Final = (
    "UPDATE attempts SET finished_at = ?, status = ?, reason = ?, step = ?, trace = ? WHERE job = ? AND token = ?"
)
RELEASE_JOB: Final = (
    "UPDATE jobs SET status = 'pending', lease_until = NULL, next_attempt_at = ?, updated_at = ? "
    "WHERE id = ? AND token = ? AND status = 'running'"
)
RELEASE_ATTEMPT: Final = (
    "UPDATE attempts SET status = 'released', finished_at = ?, reason = ? "
    "WHERE job = ? AND token = ? AND finished_at IS NULL"
)
JOB_FOR_REPLAY: Final = "SELECT delivery, mapping, mapping_file, resource_key, status FROM jobs WHERE id = ?"
MARK_REPLAYED: Final = "UPDATE jobs SET status = 'replayed', superseded_by = ?, updated_at = ? WHERE id = ?"
DELIVERY_STATUS: Final = "SELECT status FROM deliveries WHERE id = ?"
ACCEPT_DELIVERY: Final = "UPDATE deliveries SET status = 'accepted' WHERE id = ?"
# Pruning goes job by job (a delivery goes with its last job) in small batches. No ORDER BY: jobs_by_status
# (status, id) gives the oldest first anyway, and sorting every finished job to take 500 would not.
PRUNABLE_JOBS: Final = "SELECT id, delivery FROM jobs WHERE status IN ({marks}) AND updated_at < ? LIMIT ?"
PRUNABLE_DELIVERIES: Final = "SELECT id FROM deliveries WHERE status IN ({marks}) AND received_at < ? LIMIT ?"
DELETE_ATTEMPTS: Final = "DELETE FROM attempts WHERE job IN ({marks})"
DELETE_JOBS: Final = "DELETE FROM jobs WHERE id IN ({marks})"
DELETE_DELIVERIES: Final = (
    "DELETE FROM deliveries WHERE id IN ({marks}) AND NOT EXISTS (SELECT 1 FROM jobs j "
    "WHERE j.delivery = deliveries.id) RETURNING id"
)
PING: Final = "INSERT INTO meta (key, value) VALUES ('ping', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
COUNTS: Final = (
    "SELECT status, COUNT(*) FROM jobs WHERE status IN ('pending', 'running', 'retry', 'dead') GROUP BY status"
)

JOB_COLUMNS: Final = (
    "j.id, j.delivery, d.received_at, j.mapping, j.mapping_file, j.resource_key, j.status, j.attempts, "
    "j.next_attempt_at, j.last_reason, j.replay_of, j.superseded_by, j.created_at, j.updated_at, j.max_attempts"
)
DELIVERY_COLUMNS: Final = (
    "d.id, d.received_at, d.delivery_id, d.status, d.signature, d.summary, d.body_sha256, d.headers, d.body, "
    "d.duplicate_of, d.notes"
)
JOBS: Final = f"SELECT {JOB_COLUMNS} FROM jobs j JOIN deliveries d ON d.id = j.delivery"
DELIVERIES: Final = f"SELECT {DELIVERY_COLUMNS} FROM deliveries d"
ATTEMPTS: Final = (
    "SELECT job, number, started_at, finished_at, status, reason, step, trace FROM attempts "
    "WHERE job = ? ORDER BY number"
)


def marks(count: int) -> str:
    """`?, ?, ?` for an IN list of `count` values."""
    return ", ".join("?" * count)
