"""The durable queue between the listener and the workers: stored webhooks, jobs, attempts.

`open_store(location)` picks the implementation: a file path is SQLite (the default, embedded); a
`postgresql://` URL is the PostgreSQL store, shared by any number of wlmap processes, with the same tables and
state machine (`base.SqlStore`) and the same layout migrations (`migrations`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from mapper.service.store.base import SqlStore
from mapper.service.store.bucket_records import (
    BucketDetail,
    BucketItem,
    BucketRow,
    Fired,
    NewItem,
    Placed,
    Rules,
    ScheduledRun,
)
from mapper.service.store.buckets import FencedOut
from mapper.service.store.interface import Clock, Store, run_blocking
from mapper.service.store.operator import (
    CANCELLED,
    ActionRow,
    DeliveryLine,
    EventQuery,
    JobLine,
    NewAction,
    NotPossible,
    Page,
)
from mapper.service.store.records import (
    CUTS,
    AttemptRow,
    Claimed,
    Cuts,
    DeliveryRow,
    Finish,
    Ingested,
    JobDetail,
    JobRow,
    NewDelivery,
    NewJob,
    NotFound,
    NotReplayable,
    Pruned,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "CANCELLED",
    "CUTS",
    "ActionRow",
    "AttemptRow",
    "BucketDetail",
    "BucketItem",
    "BucketRow",
    "Claimed",
    "Clock",
    "Cuts",
    "DeliveryLine",
    "DeliveryRow",
    "EventQuery",
    "FencedOut",
    "Finish",
    "Fired",
    "Ingested",
    "JobDetail",
    "JobLine",
    "JobRow",
    "NewAction",
    "NewDelivery",
    "NewItem",
    "NewJob",
    "NotFound",
    "NotPossible",
    "NotReplayable",
    "Page",
    "Placed",
    "Pruned",
    "Rules",
    "ScheduledRun",
    "SqlStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "describe",
    "is_postgres",
    "open_store",
    "run_blocking",
]


POSTGRES_SCHEMES: Final = ("postgres://", "postgresql://")


def is_postgres(location: str | Path) -> bool:
    return str(location).startswith(POSTGRES_SCHEMES)


def describe(location: str | Path) -> str:
    """The store's location for logs and messages: a PostgreSQL URL loses its password."""
    if not is_postgres(location):
        return str(location)
    try:
        from mapper.service.store.postgres import describe as describe_url
    except ImportError:
        return str(location).split("://", 1)[0] + "://..."
    return describe_url(str(location))


def open_store(location: str | Path, *, max_bytes: int | None = None, connections: int | None = None) -> Store:
    """The store at `location`; StoreError (plain words) when it cannot be opened.

    `max_bytes` caps a SQLite file; `connections` caps one process's connections to PostgreSQL.
    """
    text = str(location)
    if is_postgres(text):
        if max_bytes is not None:
            raise StoreError(
                "a size limit (--store-max-mb) applies to the SQLite store only; "
                "limit a PostgreSQL database with its own tools"
            )
        try:
            from mapper.service.store.postgres import MAX_CONNECTIONS, PostgresStore
        except ImportError:
            raise StoreError(
                "the PostgreSQL store needs psycopg, which is not installed: pip install 'wlmap[postgres]'"
            ) from None
        return PostgresStore(text, max_connections=connections or MAX_CONNECTIONS)
    from mapper.service.store.sqlite import SqliteStore

    return SqliteStore(text, max_bytes=max_bytes)
