"""The store's tables, written once for every SQL dialect; a dialect only names its column types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SCHEMA_VERSION: Final = "1"


@dataclass(frozen=True)
class Types:
    """Column types that differ between databases."""

    id: str  # an ever-increasing primary key: ids are never reused, job ids become idempotency keys
    real: str
    blob: str


SQLITE: Final = Types(id="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL", blob="BLOB")
POSTGRES: Final = Types(
    id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", real="DOUBLE PRECISION", blob="BYTEA"
)

# Times are seconds since the epoch (UTC) so every dialect compares them the same way.
_TABLES: Final = """
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


def statements(types: Types) -> list[str]:
    """The CREATE statements for a dialect, one per list item (idempotent: IF NOT EXISTS)."""
    text = _TABLES.format(id=types.id, real=types.real, blob=types.blob)
    return [part.strip() for part in text.split(";") if part.strip()]
