"""Fixtures shared by the test modules: a PostgreSQL schema of its own for every test that asks for one.

PostgreSQL tests run when WLMAP_TEST_POSTGRES names a server (`postgresql://postgres@127.0.0.1:5432/test`;
CI sets it). Without it they are skipped, saying how to enable them; but under CI (CI set) a missing or
unreachable server fails them, so a broken database never passes as "skipped". Each test gets a fresh schema
(search_path) with a unique name and application_name, dropped afterwards: tests may run in parallel.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

POSTGRES_ENV = "WLMAP_TEST_POSTGRES"
HOW = f"set {POSTGRES_ENV}=postgresql://USER@HOST:5432/DB (e.g. postgresql://postgres@127.0.0.1:5432/test)"
OFF = "PostgreSQL tests are off"


def with_params(url: str, **params: str) -> str:
    """The URL with query parameters added (values already URL-encoded)."""
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


@dataclass(frozen=True)
class PostgresSchema:
    """A schema of one test's own: `url` is what `--store` takes (its search_path is the schema)."""

    server: str
    schema: str
    application_name: str

    @property
    def url(self) -> str:
        return with_params(
            self.server, options=f"-csearch_path%3D{self.schema}", application_name=self.application_name
        )

    def connect(self) -> Any:
        """An autocommit psycopg connection with the schema on its search_path (not counted as wlmap's)."""
        import psycopg

        conn = psycopg.connect(self.server, autocommit=True, application_name="wlmap-test-admin")
        conn.execute(f"SET search_path TO {self.schema}")
        return conn

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.connect()) as conn:
            return list(conn.execute(sql, params).fetchall())

    def terminate(self) -> int:
        """Cut every connection wlmap has open to this schema (pg_terminate_backend); how many."""
        with contextlib.closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (self.application_name,),
            ).fetchall()
        return len(rows)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's URL, checked reachable; skips (fails under CI) when there is none."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    under_ci = bool(os.environ.get("CI"))
    if not url:
        if under_ci:
            pytest.fail(f"PostgreSQL tests cannot run under CI: {POSTGRES_ENV} is not set ({HOW})")
        pytest.skip(f"{OFF}: {HOW}")
    try:
        import psycopg
    except ImportError:
        if under_ci:
            pytest.fail("PostgreSQL tests need psycopg: pip install -e '.[test]'")
        pytest.skip("PostgreSQL tests need psycopg: pip install -e '.[test]'")
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"{POSTGRES_ENV}={url} is set but that server cannot be reached: {exc}")
    return url


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line at the end: how many PostgreSQL tests were skipped, and why (CI sets the variable: none are)."""
    every = terminalreporter.stats.get("skipped", [])
    skipped = [r for r in every if OFF in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} PostgreSQL tests skipped because {POSTGRES_ENV} is not set; to run them, {HOW}"
        )
    # The vendors' published API descriptions live outside the repository (shared/reference/vendor-specs beside
    # it); a checkout without them skips the conformance checks, and says so here rather than in a long list.
    specs = [r for r in every if "vendor specs not found" in str(getattr(r, "longrepr", ""))]
    if specs:
        terminalreporter.write_line(
            f"{len(specs)} vendor-conformance checks skipped: shared/reference/vendor-specs was not found beside "
            "the repository; set WLMAP_VENDOR_SPECS to its folder to run them"
        )


@pytest.fixture
def postgres(postgres_server: str) -> Iterator[PostgresSchema]:
    import psycopg

    name = f"wlmap_test_{uuid.uuid4().hex[:16]}"
    database = PostgresSchema(postgres_server, name, name)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield database
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,))
            conn.execute(f"DROP SCHEMA {name} CASCADE")
