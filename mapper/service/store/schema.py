"""Column types per database: the store's tables are written once (in `migrations`), a dialect names its types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Types:
    """Column types that differ between databases."""

    id: str  # an ever-increasing primary key: ids are never reused, job ids become idempotency keys
    real: str
    blob: str


SQLITE: Final = Types(id="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL", blob="BLOB")
POSTGRES: Final = Types(id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", real="DOUBLE PRECISION", blob="BYTEA")


def statements(text: str, types: Types) -> list[str]:
    """`;`-separated CREATE/ALTER statements with `{id}`, `{real}`, `{blob}` in a dialect's types."""
    filled = text.format(id=types.id, real=types.real, blob=types.blob)
    return [part.strip() for part in filled.split(";") if part.strip()]
