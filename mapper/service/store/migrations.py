"""The store's layout as numbered migrations; `schema_version` records which ones a database has had.

Every implementation runs the same list, inside one transaction that no other wlmap process can enter at the
same time (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so replicas that start together upgrade a
database exactly once. A migration is never edited once released: a change to the layout is a new, higher
number. A database newer than this wlmap (a later release ran on it) is refused rather than misread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mapper.service.store import bucket_sql
from mapper.service.store.records import StoreError
from mapper.service.store.schema import Types, statements


@dataclass(frozen=True)
class Migration:
    """One step of the layout: statements (templates with `{id}`, `{real}`, `{blob}`) run in order."""

    version: int
    description: str
    text: str

    def statements(self, types: Types) -> list[str]:
        return statements(self.text, types)


# Times are seconds since the epoch (UTC) so every dialect compares them the same way. Version 1 is the layout
# the embedded store had before migrations existed: IF NOT EXISTS lets it adopt such a database as it is.
_V1: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id {id},
    received_at {real} NOT NULL,
    delivery_id TEXT,
    dedupe_key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    signature TEXT NOT NULL,
    summary TEXT NOT NULL,
    headers TEXT NOT NULL,
    body {blob} NOT NULL,
    status TEXT NOT NULL,
    duplicate_of BIGINT
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_by_delivery_id ON deliveries (delivery_id)
    WHERE status <> 'duplicate';
CREATE INDEX IF NOT EXISTS deliveries_by_dedupe_key ON deliveries (dedupe_key, received_at);
CREATE INDEX IF NOT EXISTS deliveries_by_received_at ON deliveries (received_at);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status, id);
CREATE TABLE IF NOT EXISTS jobs (
    id {id},
    delivery BIGINT NOT NULL REFERENCES deliveries (id),
    mapping TEXT NOT NULL,
    mapping_file TEXT NOT NULL,
    resource_key TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at {real} NOT NULL,
    lease_until {real},
    token BIGINT NOT NULL,
    last_reason TEXT,
    replay_of BIGINT,
    superseded_by BIGINT,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_active_by_resource ON jobs (mapping, resource_key, id)
    WHERE status IN ('pending', 'running', 'retry');
CREATE INDEX IF NOT EXISTS jobs_active_by_time ON jobs (next_attempt_at)
    WHERE status IN ('pending', 'running', 'retry');
CREATE INDEX IF NOT EXISTS jobs_by_delivery ON jobs (delivery);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, id);
CREATE TABLE IF NOT EXISTS attempts (
    job BIGINT NOT NULL REFERENCES jobs (id),
    number INTEGER NOT NULL,
    token BIGINT NOT NULL,
    started_at {real} NOT NULL,
    finished_at {real},
    status TEXT NOT NULL,
    reason TEXT,
    step TEXT,
    trace TEXT,
    PRIMARY KEY (job, number)
)
"""

# Only webhooks without a delivery id are found by their body (sql.FIND_BY_DEDUPE_KEY says `delivery_id IS
# NULL`); indexing every webhook's key cost each ingest one more insert at a random place in a B-tree.
_V2: Final = """
DROP INDEX IF EXISTS deliveries_by_dedupe_key;
CREATE INDEX IF NOT EXISTS deliveries_without_id_by_dedupe_key ON deliveries (dedupe_key, received_at)
    WHERE delivery_id IS NULL
"""

# A job counts its attempts that were cut short (store.records.Cuts) and names the process holding its lease
# (store.holders), so that a restarted process can take back at once what its dead predecessor held.
_V3: Final = """
ALTER TABLE jobs ADD COLUMN cuts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN holder TEXT
"""

# Operator actions (store.actions): each replay, retry now and cancel, who asked and what came of it, which is
# also the event's history. Why a job waits (`max_attempts`: "attempt 3 of 8") and why an ignored webhook was
# ignored (`notes`). The console's pages go newest first by id within a mapping, a resource or a time
# (store.pages): without these indexes a filtered page read every job.
_V5: Final = """
CREATE TABLE IF NOT EXISTS actions (
    id {id},
    kind TEXT NOT NULL,
    job BIGINT,
    delivery BIGINT,
    requested_by TEXT NOT NULL,
    requested_at {real} NOT NULL,
    state TEXT NOT NULL,
    was TEXT,
    note TEXT,
    made TEXT,
    settled_at {real}
);
CREATE INDEX IF NOT EXISTS actions_requested ON actions (id) WHERE state = 'requested';
CREATE INDEX IF NOT EXISTS actions_by_job ON actions (job);
CREATE INDEX IF NOT EXISTS actions_by_delivery ON actions (delivery);
ALTER TABLE jobs ADD COLUMN max_attempts INTEGER;
ALTER TABLE deliveries ADD COLUMN notes TEXT;
CREATE INDEX IF NOT EXISTS jobs_by_mapping ON jobs (mapping, id);
CREATE INDEX IF NOT EXISTS jobs_by_resource ON jobs (resource_key, id);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at)
"""

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "deliveries, jobs and attempts", _V1),
    Migration(2, "index webhook bodies only for deliveries without an id", _V2),
    Migration(3, "count cut attempts; name the holder of a lease", _V3),
    # 4, not 3: issue 15's migration 3 (cut attempts, lease holders) lands first; a gap is harmless.
    Migration(4, "buckets of collected items, and schedules' due times", bucket_sql.MIGRATION),
    # 5: issue 10's buckets took 4 first.
    Migration(5, "operator actions; why jobs wait and webhooks were ignored; indexes for the console", _V5),
)

CREATE_VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at {real} NOT NULL, "
    "description TEXT NOT NULL)"
)
CURRENT_VERSION: Final = "SELECT MAX(version) FROM schema_version"
RECORD_VERSION: Final = "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)"

Run = Callable[[str, Sequence[Any]], Any]  # runs one statement (with `?` placeholders), returns a cursor


def upgrade(run: Run, types: Types, now: float, where: str, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the migrations the database has not had yet, in order; the versions applied.

    The caller holds the transaction (and the lock that keeps other processes out) around this call.
    """
    newest = max((m.version for m in migrations), default=0)
    run(CREATE_VERSION_TABLE.format(real=types.real), ())
    found = run(CURRENT_VERSION, ()).fetchone()
    current = int(found[0]) if found is not None and found[0] is not None else 0
    if current > newest:
        raise StoreError(
            f"the store {where} has layout version {current}, made by a newer wlmap; this one knows "
            f"versions up to {newest}: upgrade wlmap (a store is never downgraded)"
        )
    applied = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version <= current:
            continue
        for statement in migration.statements(types):
            run(statement, ())
        run(RECORD_VERSION, (migration.version, now, migration.description))
        applied.append(migration.version)
    return applied
