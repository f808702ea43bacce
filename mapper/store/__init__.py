"""The durable queue between the listener and the workers: stored webhooks, jobs, attempts.

`open_store(location)` picks the implementation: a file path is SQLite (the default, embedded); a
`postgresql://` URL is reserved for the PostgreSQL store, which keeps the same tables and state machine.
"""

from __future__ import annotations

from pathlib import Path

from mapper.store.base import Clock, SqlStore, Store
from mapper.store.records import (
    AttemptRow,
    Claimed,
    DeliveryRow,
    Finish,
    Ingested,
    JobDetail,
    JobRow,
    NewDelivery,
    NewJob,
    NotFound,
    NotReplayable,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "AttemptRow",
    "Claimed",
    "Clock",
    "DeliveryRow",
    "Finish",
    "Ingested",
    "JobDetail",
    "JobRow",
    "NewDelivery",
    "NewJob",
    "NotFound",
    "NotReplayable",
    "SqlStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


def open_store(location: str | Path, *, max_bytes: int | None = None) -> Store:
    """The store at `location`; StoreError (plain words) when it cannot be opened."""
    text = str(location)
    if text.startswith(("postgres://", "postgresql://")):
        raise StoreError("the PostgreSQL store is not available yet; use a file path for the SQLite store")
    from mapper.store.sqlite import SqliteStore

    return SqliteStore(text, max_bytes=max_bytes)
