"""Every hot statement of the store reads the big tables through an index, on SQLite and on PostgreSQL.

deliveries, jobs and attempts grow with every webhook (1,000,000 finished events is an ordinary month for a busy
installation); a statement that reads one of them whole would make acks and claims slower as the store grows.
SQLite: EXPLAIN QUERY PLAN must show no `SCAN` of them (a full read of the table or of an index). PostgreSQL:
EXPLAIN with sequential scans priced out (`enable_seqscan = off`, as its planner takes a Seq Scan on any small
table) must show no `Seq Scan` on them: if one remains, no index can serve the statement. The console's pages
are checked in test_store_pages.py; bench/growth.py times acks and claims at 1,000,000 finished events.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mapper.service.store import group, sql
from mapper.service.store.postgres import PostgresStore
from mapper.service.store.sqlite import SqliteStore

BIG = ("deliveries", "jobs", "attempts")

# name → the statement as the store runs it (`{marks}` lists of three values; the dialect's index hints)
HOT: dict[str, str] = {
    # the ack: dedupe lookups, the coalescing of older pending jobs, the group commit's own lookups
    "find by delivery id": sql.FIND_BY_DELIVERY_ID,
    "find by dedupe key": sql.FIND_BY_DEDUPE_KEY,
    "any to coalesce": sql.ANY_TO_COALESCE,
    "coalesce older": sql.COALESCE_OLDER,
    "group: firsts by delivery id": group._FIRSTS_BY_ID,
    "group: next ids": group._NEXT_IDS,
    "group: pending of resources": group._PENDING_OF,
    "group: supersede": group._SUPERSEDE,
    # the claim, the run's outcome, the lease
    "claimable": sql.CLAIMABLE,
    "claimed": sql.CLAIMED,
    "take job": sql.TAKE_JOB,
    "lose attempts": sql.LOSE_ATTEMPTS,
    "count cut": sql.COUNT_CUT,
    "extend": sql.EXTEND,
    "finish job": sql.FINISH_JOB,
    "finish attempt": sql.FINISH_ATTEMPT,
    "release job": sql.RELEASE_JOB,
    "release attempt": sql.RELEASE_ATTEMPT,
    # lease reclaim from processes that are gone
    "holders": sql.HOLDERS,
    "expire held": sql.EXPIRE_HELD,
    # metrics, replays, history, pruning
    "counts": sql.COUNTS,
    "job for replay": sql.JOB_FOR_REPLAY,
    "mark replayed": sql.MARK_REPLAYED,
    "delivery status": sql.DELIVERY_STATUS,
    "accept delivery": sql.ACCEPT_DELIVERY,
    "attempts of a job": sql.ATTEMPTS,
    "prunable jobs": sql.PRUNABLE_JOBS,
    "prunable deliveries": sql.PRUNABLE_DELIVERIES,
    "delete attempts": sql.DELETE_ATTEMPTS,
    "delete jobs": sql.DELETE_JOBS,
    "delete deliveries": sql.DELETE_DELIVERIES,
}


def statement(text: str, hints: dict[str, str]) -> str:
    return text.format(**hints, marks="?, ?, ?")


def test_the_list_names_every_statement_of_the_jobs_and_deliveries_that_runs_per_event() -> None:
    # A statement added to sql.py that reads the big tables is added here too (or named as not hot).
    not_hot = {"INSERT_DELIVERY", "INSERT_JOB", "INSERT_ATTEMPT", "WAIT_AFTER_CUT", "DEAD_AFTER_CUTS", "PING"}
    not_hot |= {"JOBS", "DELIVERIES", "JOB_COLUMNS", "DELIVERY_COLUMNS", "ACTIVE_IN"}  # pages: test_store_pages.py
    named = {text for text in HOT.values()}
    constants = {name for name, value in vars(sql).items() if name.isupper() and isinstance(value, str)}
    missing = sorted(name for name in constants - not_hot if getattr(sql, name) not in named)
    assert missing == []


def sqlite_scans(path: Path) -> dict[str, list[str]]:
    found = {}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for name, text in HOT.items():
            query = statement(text, SqliteStore.index_hints)
            steps = [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + query, [1] * query.count("?"))]
            scans = [s for s in steps if re.match(r"SCAN (\w+)", s) and _table(s, query) in BIG]
            if scans:
                found[name] = steps
    return found


def _table(step: str, query: str) -> str:
    """The table a plan step reads (`SCAN j USING ...` names the alias `j` of `jobs j`)."""
    name = step.split()[1]
    alias = re.search(rf"\b(\w+) {name}\b", query)
    return alias.group(1) if name not in BIG and alias else name


def test_sqlite_reads_the_big_tables_only_through_indexes(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "plans.db").close()
    assert sqlite_scans(tmp_path / "plans.db") == {}


def test_sqlite_check_catches_a_full_scan(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "plans.db").close()
    with contextlib.closing(sqlite3.connect(tmp_path / "plans.db")) as conn:
        conn.execute("DROP INDEX jobs_by_status")  # HOLDERS, COUNTS and the prune would read every job
    assert {"holders", "counts", "prunable jobs"} <= set(sqlite_scans(tmp_path / "plans.db"))


def postgres_scans(conn: Any) -> dict[str, list[str]]:
    found = {}
    conn.execute("SET enable_seqscan = off")
    for name, text in HOT.items():
        if name.startswith("group:"):
            continue  # the SQLite store's group commit (store/group.py); PostgreSQL writes each ack by itself
        query = statement(text, PostgresStore.index_hints).replace("?", "%s")  # as PostgresStore._sql does
        with conn.transaction(force_rollback=True):  # EXPLAIN of an UPDATE plans it only; rolled back all the same
            rows = conn.execute("EXPLAIN " + query, ["1"] * query.count("%s")).fetchall()
        steps = [str(row[0]) for row in rows]
        scans = [s for s in steps if any(re.search(rf"Seq Scan on {table}\b", s) for table in BIG)]
        if scans:
            found[name] = steps
    return found


@pytest.fixture
def pg(postgres: Any) -> Any:
    PostgresStore(postgres.url).close()  # the layout, by the store's own migrations
    with contextlib.closing(postgres.connect()) as conn:
        yield conn


def test_postgres_reads_the_big_tables_only_through_indexes(pg: Any) -> None:
    assert postgres_scans(pg) == {}


def test_postgres_check_catches_a_full_scan(pg: Any) -> None:
    pg.execute("DROP INDEX jobs_by_status")  # (HOLDERS then reads the partial index of active jobs)
    assert {"counts", "prunable jobs"} <= set(postgres_scans(pg))
