"""The base of the SQL stores: what a dialect supplies (transactions, named locks, placeholders), and helpers.

`base.SqlStore` writes the state machine on top of these; `sqlite.SqliteStore` and `postgres.PostgresStore`
supply `_write` and `_read` (and, for many writers, the locks).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, ClassVar, TypeVar

from mapper.service.store import migrations
from mapper.service.store.interface import Clock, Cursor, Store, Tx
from mapper.service.store.schema import Types

T = TypeVar("T")


class SqlDialect(Store):
    """What a dialect supplies (transactions, locks, placeholders) and the helpers the state machine uses."""

    lock_clause: str = ""  # PostgreSQL: " FOR UPDATE OF j SKIP LOCKED", so concurrent claimers do not collide
    index_hints: ClassVar[dict[str, str]] = {"by_resource": "", "by_time": "", "by_body": ""}  # see sql.py

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock

    # ----------------------------------------------------------------------------- dialect hooks

    @abstractmethod
    def _write(self, op: Callable[[Tx], T]) -> Future[T]:
        """Run op in a write transaction (maybe grouped with others); the future resolves after COMMIT."""

    @abstractmethod
    def _read(self, op: Callable[[Tx], T]) -> T:
        """Run op against one consistent snapshot."""

    def _lock_name(self, tx: Tx, key: str) -> None:
        """Wait for, then hold until the transaction ends, the lock named `key` (one writer needs none)."""

    def _try_lock_name(self, tx: Tx, key: str) -> bool:
        """Hold the lock named `key` until the transaction ends if nobody else has it; False if somebody does."""
        return True

    def _sql(self, text: str) -> str:
        """The statement in the dialect's placeholder style (they are written with `?`)."""
        return text

    def _run(self, tx: Tx, text: str, params: Sequence[Any] = ()) -> Cursor:
        return tx.execute(self._sql(text), tuple(params))

    def _one(self, tx: Tx, text: str, params: Sequence[Any] = ()) -> Any:
        return self._run(tx, text, params).fetchone()

    def _all(self, tx: Tx, text: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._run(tx, text, params).fetchall()

    def _migrate(
        self, tx: Tx, types: Types, where: str, steps: Sequence[migrations.Migration] = migrations.MIGRATIONS
    ) -> list[int]:
        """Bring the layout up to date inside the caller's exclusive transaction; the versions applied."""
        return migrations.upgrade(lambda text, params: self._run(tx, text, params), types, self.clock(), where, steps)
