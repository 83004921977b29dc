"""A precompute run's lifecycle: start it, look it up, record its shards, fail it.

A run is a row of ``recsys.precompute_runs`` and a partitioned table
``recsys.ranked_scores_r<run>`` (one leaf ``..._s<shard>`` per shard, written by
``partitions.write_shard``). This module owns the row and the table's life: created by
``start_run``, detached and dropped here when the run fails or ``retention`` retires it.
The SQL is in ``sql/queries/ranking.sql``, but for the statements that name a run's own
tables (``run_table_sql``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa
from psycopg import sql

from recsys.config import get_settings
from recsys.db import store
from recsys.db.sql import dbapi, queries
from recsys.errors import RecsysError
from recsys.model import registry

log = logging.getLogger(__name__)


class PublishError(RecsysError):
    """A run cannot be written or published; the published ranking is unchanged."""


class Run(NamedTuple):
    """A row of ``recsys.precompute_runs`` (``run_info``), its columns in table order."""

    run_id: int
    model_version: str
    status: str
    shards: int
    shards_done: list[int]
    users: int | None
    movies: int | None
    rows: int | None
    started_at: datetime
    finished_at: datetime | None
    published_at: datetime | None
    error: str | None


def run_table(run_id: int) -> str:
    return f"recsys.ranked_scores_r{int(run_id)}"


def shard_table(run_id: int, shard: int) -> str:
    return f"recsys.ranked_scores_r{int(run_id)}_s{int(shard)}"


# A run's tables are named by its id (a leaf also by its shard): identifiers, which no bound
# parameter can stand for, so the statements that name them are composed with psycopg.sql,
# from integers only. They render unquoted, as the names were always written, so the
# statement text that monitoring (and tests/test_faults.py) matches stays the same.
def run_table_sql(run_id: int) -> sql.Composed:
    return sql.SQL("recsys.ranked_scores_r{}").format(sql.Literal(int(run_id)))


def shard_table_sql(run_id: int, shard: int) -> sql.Composed:
    return sql.SQL("recsys.ranked_scores_r{}_s{}").format(sql.Literal(int(run_id)), sql.Literal(int(shard)))


def champion_version(engine: sa.Engine) -> str:
    version = registry.champion_version_id(engine)
    if version is None:
        raise PublishError("no champion model in recsys.model_versions; run `recsys train` first")
    return version


def start_run(engine: sa.Engine, model_version: str | None, shards: int, *, max_pairs: int | None = None) -> int:
    """Record a new run (for ``model_version``, default the champion) and create its table.

    Refused, before anything is written, when the catalogue has more users x movies pairs
    than ``max_pairs`` (default: ``RECSYS_MAX_PAIRS``).
    """
    if shards < 1:
        raise PublishError(f"shards must be at least 1, got {shards}")
    model_version = model_version or champion_version(engine)
    with engine.begin() as conn:
        if not registry.is_known_version(conn, model_version):
            raise PublishError(f"unknown model version {model_version!r}")
        _refuse_too_many_pairs(conn, get_settings().max_pairs if max_pairs is None else max_pairs)
        db = dbapi(conn)
        run_id = queries("ranking").insert_run(db, model_version=model_version, shards=shards)
        db.execute(
            sql.SQL("CREATE TABLE {} (LIKE recsys.ranked_scores) PARTITION BY LIST (shard)").format(
                run_table_sql(run_id)
            )
        )
        # The newest run wins: an older run still 'running' was killed or lost the race, and
        # can no longer publish; `cleanup` drops its tables.
        queries("ranking").abandon_older_runs(db, run_id=run_id)
    log.info("started precompute run %d for model %s with %d shard(s)", run_id, model_version, shards)
    return run_id


def _refuse_too_many_pairs(conn: sa.Connection, max_pairs: int) -> None:
    users, movies = store.catalogue_size(conn)
    if users * movies > max_pairs:
        raise PublishError(
            f"{users:,} users x {movies:,} movies = {users * movies:,} pairs, more than RECSYS_MAX_PAIRS "
            f"({max_pairs:,}) rows of one published ranking; raise it if the database has room for them"
        )


def run_info(engine: sa.Engine, run_id: int) -> Run:
    with engine.connect() as conn:
        row = queries("ranking").run_info(dbapi(conn), run_id=run_id)
    if row is None:
        raise PublishError(f"unknown precompute run {run_id}")
    return Run._make(row)


def shard_users(user_ids: np.ndarray, shard: int, shards: int) -> np.ndarray:
    return user_ids[user_ids % shards == shard]


def record_shard_done(conn: sa.Connection, run_id: int, shard: int) -> None:
    """Add ``shard`` to the run's ``shards_done`` (once, sorted), in the transaction that wrote it."""
    queries("ranking").record_shard_done(dbapi(conn), run_id=run_id, shard=shard)


def fail_run(engine: sa.Engine, run_id: int, error: str) -> None:
    """Record the failure and drop the run's tables; the published ranking is untouched."""
    with engine.begin() as conn:
        updated = queries("ranking").fail_run(dbapi(conn), run_id=run_id, error=error[:4000])
        attached = is_attached(conn, run_id)
    if updated:
        drop_run_table(engine, run_id, attached=attached)
    log.warning("precompute run %d failed: %s", run_id, error)


def is_attached(conn: sa.Connection, run_id: int) -> bool:
    """Whether the run's table is a partition of ``recsys.ranked_scores``."""
    return bool(queries("ranking").is_attached(dbapi(conn), table_name=run_table(run_id)))


def run_bytes(conn: sa.Connection, run_id: int) -> int:
    """Bytes on disk of the run's ranking: every leaf, its indexes and TOAST (0 once dropped)."""
    return int(queries("ranking").run_bytes(dbapi(conn), table_name=run_table(run_id)) or 0)


def drop_run_table(engine: sa.Engine, run_id: int, *, attached: bool) -> None:
    if attached:
        detach_run_table(engine, run_id)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        dbapi(conn).execute(sql.SQL("DROP TABLE IF EXISTS {}").format(run_table_sql(run_id)))
    log.info("dropped the tables of precompute run %d", run_id)


def detach_run_table(engine: sa.Engine, run_id: int) -> None:
    """Detach CONCURRENTLY: no lock that blocks readers, and it waits for queries that may still read it."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        dbapi(conn).execute(
            sql.SQL("ALTER TABLE recsys.ranked_scores DETACH PARTITION {} CONCURRENTLY").format(run_table_sql(run_id))
        )


def ranking_status(conn: sa.Connection, runs: int = 5) -> dict[str, Any]:
    """The published run (None before the first publish) and the newest ``runs`` runs, as dicts.

    For the status page; ``conn``'s transaction gives it one snapshot with whatever else it reads.
    """
    published = _dicts(queries("ranking").published_run_cursor(dbapi(conn)))
    return {
        "published": published[0] if published else None,
        "precompute_runs": _dicts(queries("ranking").recent_runs_cursor(dbapi(conn), limit=runs)),
    }


def _dicts(cursor_context: Any) -> list[dict[str, Any]]:
    """The rows of an aiosql ``..._cursor`` query, each a dict keyed by its column names."""
    with cursor_context as cur:
        names = [column.name for column in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]
