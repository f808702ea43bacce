"""The statements of buckets and schedules, and their tables (migration 4), in portable SQL with `?` placeholders.

Why the indexes: one open bucket per mapping and group is a UNIQUE partial index (the backstop behind the
row lock that placing takes); the closer scans open buckets by due time; an item is found by its distinct
key; a delivery is collected by a mapping at most once (`bucket_sources`, a primary key).
"""

from __future__ import annotations

from typing import Final

MIGRATION: Final = """
CREATE TABLE IF NOT EXISTS buckets (
    id {id},
    mapping TEXT NOT NULL,
    mapping_file TEXT NOT NULL,
    group_key TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at {real} NOT NULL,
    last_item_at {real} NOT NULL,
    items INTEGER NOT NULL,
    bytes BIGINT NOT NULL,
    closes_by {real},
    closes_by_reason TEXT,
    idle {real},
    idle_reason TEXT,
    due_at {real},
    due_reason TEXT,
    check_until INTEGER NOT NULL,
    closed_at {real},
    reason TEXT,
    delivery BIGINT,
    job BIGINT
);
CREATE UNIQUE INDEX IF NOT EXISTS buckets_open_by_group ON buckets (mapping, group_key) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS buckets_open_by_due ON buckets (due_at) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS buckets_to_check ON buckets (id) WHERE status = 'open' AND check_until = 1;
CREATE UNIQUE INDEX IF NOT EXISTS buckets_by_delivery ON buckets (delivery);
CREATE INDEX IF NOT EXISTS buckets_by_status ON buckets (status, id);
CREATE TABLE IF NOT EXISTS bucket_items (
    bucket BIGINT NOT NULL REFERENCES buckets (id),
    position INTEGER NOT NULL,
    source BIGINT NOT NULL,
    distinct_key TEXT,
    value TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    added_at {real} NOT NULL,
    PRIMARY KEY (bucket, position)
);
CREATE INDEX IF NOT EXISTS bucket_items_by_key ON bucket_items (bucket, distinct_key) WHERE distinct_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS bucket_sources (
    mapping TEXT NOT NULL,
    source BIGINT NOT NULL,
    bucket BIGINT NOT NULL REFERENCES buckets (id),
    PRIMARY KEY (mapping, source)
);
CREATE INDEX IF NOT EXISTS bucket_sources_by_bucket ON bucket_sources (bucket);
CREATE TABLE IF NOT EXISTS bucket_counts (
    mapping TEXT PRIMARY KEY,
    open_buckets INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS schedules (
    mapping TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    last_due {real},
    next_due {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_runs (
    mapping TEXT NOT NULL,
    due_at {real} NOT NULL,
    since {real},
    missed INTEGER NOT NULL,
    delivery BIGINT NOT NULL,
    PRIMARY KEY (mapping, due_at)
);
CREATE UNIQUE INDEX IF NOT EXISTS schedule_runs_by_delivery ON schedule_runs (delivery)
"""

BUCKET_COLUMNS: Final = (
    "b.id, b.mapping, b.mapping_file, b.group_key, b.status, b.opened_at, b.last_item_at, b.items, b.bytes, "
    "b.due_at, b.due_reason, b.check_until, b.closed_at, b.reason, b.delivery, b.job"
)
ALREADY: Final = "SELECT bucket FROM bucket_sources WHERE mapping = ? AND source = ?"
OPEN_BUCKET: Final = (
    "SELECT id, items, bytes, closes_by, closes_by_reason, idle, idle_reason FROM buckets "
    "WHERE mapping = ? AND group_key = ? AND status = 'open'"
)
# How many buckets of a mapping are open, kept as a count: counting the rows each time a bucket opens made
# opening the 10,000th bucket scan 10,000 index entries (bench/collect_load.py: 1,218 acks/s with 10,000 buckets
# opening, against 4,041 for the plain mapping).
OPENED: Final = (
    "INSERT INTO bucket_counts (mapping, open_buckets) VALUES (?, 1) ON CONFLICT (mapping) "
    "DO UPDATE SET open_buckets = bucket_counts.open_buckets + 1 RETURNING open_buckets"
)
CLOSED: Final = "UPDATE bucket_counts SET open_buckets = open_buckets - 1 WHERE mapping = ?"
OLDEST_OPEN: Final = "SELECT id FROM buckets WHERE mapping = ? AND status = 'open' ORDER BY id LIMIT 1"
INSERT_BUCKET: Final = (
    "INSERT INTO buckets (mapping, mapping_file, group_key, status, opened_at, last_item_at, items, bytes, "
    "closes_by, closes_by_reason, idle, idle_reason, check_until) "
    "VALUES (?, ?, ?, 'open', ?, ?, 0, 0, ?, ?, ?, ?, 0) RETURNING id"
)
FIND_DISTINCT: Final = "SELECT position, bytes FROM bucket_items WHERE bucket = ? AND distinct_key = ?"
REPLACE_ITEM: Final = (
    "UPDATE bucket_items SET source = ?, value = ?, bytes = ?, added_at = ? WHERE bucket = ? AND position = ?"
)
INSERT_ITEM: Final = (
    "INSERT INTO bucket_items (bucket, position, source, distinct_key, value, bytes, added_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_SOURCE: Final = "INSERT INTO bucket_sources (mapping, source, bucket) VALUES (?, ?, ?)"
UPDATE_BUCKET: Final = (
    "UPDATE buckets SET items = ?, bytes = ?, last_item_at = ?, due_at = ?, due_reason = ?, check_until = ? "
    "WHERE id = ?"
)
CLOSE_BUCKET: Final = (
    "UPDATE buckets SET status = 'closed', closed_at = ?, reason = ?, due_at = NULL, check_until = 0 "
    "WHERE id = ? AND status = 'open' RETURNING mapping, mapping_file, group_key, items, opened_at"
)
SET_RUN: Final = "UPDATE buckets SET delivery = ?, job = ? WHERE id = ?"
DUE: Final = "SELECT id, due_reason FROM buckets WHERE status = 'open' AND due_at <= ? ORDER BY due_at LIMIT ?"
TO_CHECK: Final = "SELECT id, mapping, group_key FROM buckets WHERE status = 'open' AND check_until = 1 LIMIT ?"
ANY_DUE: Final = "SELECT 1 FROM buckets WHERE status = 'open' AND due_at <= ? LIMIT 1"
ANY_TO_CHECK: Final = "SELECT 1 FROM buckets WHERE status = 'open' AND check_until = 1 LIMIT 1"
CHECKED: Final = "UPDATE buckets SET check_until = 0 WHERE id = ? AND status = 'open'"
ITEMS: Final = "SELECT position, source, value, added_at FROM bucket_items WHERE bucket = ? ORDER BY position"
BY_DELIVERY: Final = f"SELECT {BUCKET_COLUMNS} FROM buckets b WHERE b.delivery = ?"
BY_ID: Final = f"SELECT {BUCKET_COLUMNS} FROM buckets b WHERE b.id = ?"
LIST: Final = f"SELECT {BUCKET_COLUMNS} FROM buckets b"
NEXT_DUE: Final = "SELECT MIN(due_at) FROM buckets WHERE status = 'open'"
OPEN_COUNTS: Final = "SELECT mapping, COUNT(*), SUM(items) FROM buckets WHERE status = 'open' GROUP BY mapping"
# Closed buckets whose run's delivery has been pruned: nothing refers to them any more.
PRUNABLE: Final = (
    "SELECT b.id FROM buckets b WHERE b.status = 'closed' AND b.delivery IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = b.delivery) ORDER BY b.id LIMIT ?"
)
DELETE_SOURCES: Final = "DELETE FROM bucket_sources WHERE bucket IN ({marks})"
DELETE_ITEMS: Final = "DELETE FROM bucket_items WHERE bucket IN ({marks})"
DELETE_BUCKETS: Final = "DELETE FROM buckets WHERE id IN ({marks})"

SCHEDULE: Final = "SELECT cron, last_due, next_due FROM schedules WHERE mapping = ?"
INSERT_SCHEDULE: Final = (
    "INSERT INTO schedules (mapping, cron, last_due, next_due, updated_at) VALUES (?, ?, NULL, ?, ?)"
)
MOVE_SCHEDULE: Final = "UPDATE schedules SET cron = ?, last_due = ?, next_due = ?, updated_at = ? WHERE mapping = ?"
INSERT_RUN: Final = "INSERT INTO schedule_runs (mapping, due_at, since, missed, delivery) VALUES (?, ?, ?, ?, ?)"
RUN_BY_DELIVERY: Final = "SELECT mapping, since, due_at, missed, delivery FROM schedule_runs WHERE delivery = ?"
NEXT_SCHEDULED: Final = "SELECT MIN(next_due) FROM schedules"
