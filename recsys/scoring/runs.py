"""A precompute run's lifecycle: start it, look it up, record its shards, fail it.

A run is a row of ``recsys.precompute_runs`` and a partitioned table
``recsys.ranked_scores_r<run>`` (one leaf ``..._s<shard>`` per shard, written by
``partitions.write_shard``). This module owns the row and the table's life: created by
``start_run``, detached and dropped here when the run fails or ``retention`` retires it.
"""

from __future__ import annotations

import logging

import numpy as np
import sqlalchemy as sa

from recsys.errors import RecsysError
from recsys.model import registry

log = logging.getLogger(__name__)


class PublishError(RecsysError):
    """A run cannot be written or published; the published ranking is unchanged."""


def run_table(run_id: int) -> str:
    return f"recsys.ranked_scores_r{int(run_id)}"


def shard_table(run_id: int, shard: int) -> str:
    return f"recsys.ranked_scores_r{int(run_id)}_s{int(shard)}"


def champion_version(engine: sa.Engine) -> str:
    version = registry.champion_version_id(engine)
    if version is None:
        raise PublishError("no champion model in recsys.model_versions; run `recsys train` first")
    return version


def start_run(engine: sa.Engine, model_version: str | None, shards: int) -> int:
    """Record a new run (for ``model_version``, default the champion) and create its table."""
    if shards < 1:
        raise PublishError(f"shards must be at least 1, got {shards}")
    model_version = model_version or champion_version(engine)
    with engine.begin() as conn:
        if not registry.is_known_version(conn, model_version):
            raise PublishError(f"unknown model version {model_version!r}")
        run_id = conn.execute(
            sa.text(
                "INSERT INTO recsys.precompute_runs (model_version, shards, users, movies) "
                "VALUES (:v, :shards, (SELECT count(*) FROM recsys.users), "
                "(SELECT count(*) FROM recsys.movies)) RETURNING run_id"
            ),
            {"v": model_version, "shards": shards},
        ).scalar_one()
        conn.execute(sa.text(f"CREATE TABLE {run_table(run_id)} (LIKE recsys.ranked_scores) PARTITION BY LIST (shard)"))
        # The newest run wins: an older run still 'running' was killed or lost the race, and
        # can no longer publish; `cleanup` drops its tables.
        conn.execute(
            sa.text(
                "UPDATE recsys.precompute_runs SET status = 'failed', finished_at = now(), "
                "error = 'abandoned: run ' || :r || ' started before it finished' "
                "WHERE status = 'running' AND run_id < :r"
            ),
            {"r": run_id},
        )
    log.info("started precompute run %d for model %s with %d shard(s)", run_id, model_version, shards)
    return run_id


def run_info(engine: sa.Engine, run_id: int) -> sa.Row:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM recsys.precompute_runs WHERE run_id = :r"), {"r": run_id}).first()
    if row is None:
        raise PublishError(f"unknown precompute run {run_id}")
    return row


def shard_users(user_ids: np.ndarray, shard: int, shards: int) -> np.ndarray:
    return user_ids[user_ids % shards == shard]


def record_shard_done(conn: sa.Connection, run_id: int, shard: int) -> None:
    """Add ``shard`` to the run's ``shards_done`` (once, sorted), in the transaction that wrote it."""
    conn.execute(
        sa.text(
            "UPDATE recsys.precompute_runs SET shards_done = "
            "(SELECT array_agg(DISTINCT s ORDER BY s) FROM unnest(array_append(shards_done, :shard)) s) "
            "WHERE run_id = :run"
        ),
        {"shard": shard, "run": run_id},
    )


def fail_run(engine: sa.Engine, run_id: int, error: str) -> None:
    """Record the failure and drop the run's tables; the published ranking is untouched."""
    with engine.begin() as conn:
        updated = conn.execute(
            sa.text(
                "UPDATE recsys.precompute_runs SET status = 'failed', error = :e, finished_at = now() "
                "WHERE run_id = :r AND status = 'running'"
            ),
            {"e": error[:4000], "r": run_id},
        ).rowcount
        attached = is_attached(conn, run_id)
    if updated:
        drop_run_table(engine, run_id, attached=attached)
    log.warning("precompute run %d failed: %s", run_id, error)


def is_attached(conn: sa.Connection, run_id: int) -> bool:
    """Whether the run's table is a partition of ``recsys.ranked_scores``."""
    return bool(
        conn.execute(
            sa.text(
                "SELECT 1 FROM pg_inherits WHERE inhparent = 'recsys.ranked_scores'::regclass "
                "AND inhrelid = to_regclass(:t)"
            ),
            {"t": run_table(run_id)},
        ).first()
    )


def drop_run_table(engine: sa.Engine, run_id: int, *, attached: bool) -> None:
    if attached:
        detach_run_table(engine, run_id)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {run_table(run_id)}"))
    log.info("dropped the tables of precompute run %d", run_id)


def detach_run_table(engine: sa.Engine, run_id: int) -> None:
    """Detach CONCURRENTLY: no lock that blocks readers, and it waits for queries that may still read it."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"ALTER TABLE recsys.ranked_scores DETACH PARTITION {run_table(run_id)} CONCURRENTLY"))
