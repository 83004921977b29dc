"""Write a ranking run shard by shard, then publish it atomically.

A run owns a partitioned table ``recsys.ranked_scores_r<run>`` that is *not* attached to
``recsys.ranked_scores`` while it is being filled, so readers cannot see it. Each shard
(users with ``user_id % shards == shard``) is one leaf table, replaced whole by its own
transaction: create, COPY, index, check, attach to the run's table. Re-running a shard
replaces its leaf, so shards are idempotent and retryable on any worker.

Publishing attaches the run's table to ``recsys.ranked_scores``, waits for queries that
started before, then moves the ``recsys.published_ranking`` pointer (``publish_run`` says
why in two steps). Readers select through the pointer in the same statement as the
scores, so each query sees one complete ranking. A run that fails at any point never
moves the pointer: the previous ranking stays published.

The SQL is in ``sql/queries/ranking.sql``; the statements that create, fill and attach a
run's own tables are composed here (``runs.run_table_sql``: names are not parameters).

Each pair carries two numbers: ``score``, the ranking score (any finite real; the model's
list head; ``rank`` orders by it), and ``predicted_rating`` (1-5). Only ``score`` orders.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from psycopg import sql

from recsys.db.sql import dbapi, queries
from recsys.scoring import checks, ranking, runs
from recsys.scoring.runs import PublishError, Run, run_table_sql, shard_table_sql

log = logging.getLogger(__name__)

PUBLISH_LOCK_ID = 7_300_002  # serialises publishes (cleanup needs no lock: it never drops the published run)
LEAF_STATISTICS_TARGET = 10  # a leaf's ANALYZE samples 300 x this many rows
PLAN_GRACE_S = 5.0  # longest wait for in-flight queries between attach and pointer move


@dataclass(frozen=True)
class PublishedRun:
    run_id: int
    model_version: str
    rows: int
    users: int
    movies: int


def write_shard(
    engine: sa.Engine,
    run_id: int,
    shard: int,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    scores: np.ndarray,
    ratings: np.ndarray,
    seen: np.ndarray | None = None,
) -> int:
    """Replace the shard's leaf with the pairs (user_ids[i], movie_ids[j]).

    ``scores[i, j]`` is the pair's ranking score (any finite real, higher = earlier in the
    user's list; the ranks follow it) and ``ratings[i, j]`` its predicted rating (within
    ``checks.rating_range``: the loaded data set's scale). Both are stored as float32 (``real``), and the ranks are
    computed from the float32 scores, so the stored scores order exactly as the stored
    ranks do. ``seen[i, j]`` marks the pairs the user rated; by default they are read from
    ``recsys.ratings`` (the nightly job passes the ratings it scored with instead).
    """
    run = runs.run_info(engine, run_id)
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
        scores, ratings = np.asarray(scores, dtype=np.float32), np.asarray(ratings, dtype=np.float32)
    checks.check_shard_input(run, shard, user_ids, movie_ids, scores, ratings, checks.rating_range(engine))
    with engine.begin() as conn:
        # Not flushed at commit: publishing commits synchronously, which flushes this shard's
        # WAL first, so a crash can lose an unpublished shard (the run then fails), never a
        # published one.
        conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
        # The planner needs few statistics of a leaf (docs/ARCHITECTURE.md, "Precompute speed").
        conn.execute(sa.text(f"SET LOCAL default_statistics_target = {LEAF_STATISTICS_TARGET:d}"))
        if seen is None:
            seen = ranking.seen_mask(conn, user_ids, movie_ids)
        ranks, order = ranking.ranks(scores, seen)
        payload = ranking.encode_rows(user_ids, movie_ids, scores, ratings, ranks, order)
        db, table = dbapi(conn), shard_table_sql(run_id, shard)
        db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        db.execute(
            sql.SQL(
                "CREATE TABLE {} (LIKE recsys.ranked_scores INCLUDING ALL, CHECK (run_id = {} AND shard = {}))"
            ).format(table, sql.Literal(int(run_id)), sql.Literal(int(shard)))
        )
        # Constant columns come from defaults: the COPY stream carries only what varies.
        db.execute(
            sql.SQL("ALTER TABLE {} ALTER run_id SET DEFAULT {}, ALTER shard SET DEFAULT {}").format(
                table, sql.Literal(int(run_id)), sql.Literal(int(shard))
            )
        )
        cursor = db.cursor()
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary, FREEZE)").format(
            table, sql.SQL(ranking.COPY_COLUMNS)
        )
        with cursor.copy(copy_sql) as copy:
            view, chunk = memoryview(payload), 8 << 20
            for start in range(0, len(view), chunk):
                copy.write(view[start : start + chunk])
        if cursor.rowcount != scores.size:
            raise PublishError(f"shard {shard}: COPY stored {cursor.rowcount} rows of {scores.size}")
        # Unique: a user's ranks can never repeat, checked by the index build itself.
        db.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (user_id, rank)").format(table))
        checks.check_leaf(
            conn, table, shard, user_ids, movie_ids, scores, ratings, ranks, order, seed=run_id * 1000 + shard
        )
        db.execute(sql.SQL("ANALYZE {}").format(table))
        db.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
                run_table_sql(run_id), table, sql.Literal(int(shard))
            )
        )
        runs.record_shard_done(conn, run_id, shard)
    rows = scores.size
    log.info("run %d shard %d: wrote %d rows for %d users", run_id, shard, rows, len(user_ids))
    return rows


def publish_run(engine: sa.Engine, run_id: int) -> PublishedRun:
    """Make the run the published ranking if it is complete.

    Two transactions, on purpose. PostgreSQL plans a query with the partitions committed
    when planning starts, but takes the snapshot that reads ``published_ranking`` after
    planning; attaching the partition and moving the pointer in one commit would let a
    query planned just before that commit read the new pointer without the new partition,
    and answer with nothing. So: attach (readers still follow the old pointer), wait until
    every query that started before the attach has finished, then move the pointer.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        queries("ranking").lock_publishing(dbapi(lock), lock_id=PUBLISH_LOCK_ID)
        try:
            with engine.begin() as conn:
                run = _publishable(conn, run_id)
                rows = checks.check_complete(conn, run)
                if not runs.is_attached(conn, run_id):
                    dbapi(conn).execute(
                        sql.SQL("ALTER TABLE recsys.ranked_scores ATTACH PARTITION {} FOR VALUES IN ({})").format(
                            run_table_sql(run_id), sql.Literal(int(run_id))
                        )
                    )
            attached_at = queries("ranking").clock(dbapi(lock))
            _wait_for_queries_started_before(lock, attached_at)
            with engine.begin() as conn:
                run = _publishable(conn, run_id)
                _move_pointer(conn, run, rows)
        finally:
            queries("ranking").unlock_publishing(dbapi(lock), lock_id=PUBLISH_LOCK_ID)
    log.info("published run %d (%d rows, model %s)", run_id, rows, run.model_version)
    return PublishedRun(run_id, run.model_version, rows, run.users, run.movies)


def _publishable(conn: sa.Connection, run_id: int) -> Run:
    """The run, locked, if it is complete and newer than what is published."""
    row = queries("ranking").lock_run(dbapi(conn), run_id=run_id)
    run = None if row is None else Run._make(row)
    if run is None or run.status != "running":
        raise PublishError(f"run {run_id} cannot be published (status {run.status if run else 'unknown'})")
    missing = sorted(set(range(run.shards)) - set(run.shards_done))
    if missing:
        raise PublishError(f"run {run_id} is incomplete: shard(s) {missing} not written")
    newer = queries("ranking").newer_published_run(dbapi(conn), run_id=run_id)
    if newer is not None:
        raise PublishError(f"run {run_id} is older than the published run {newer}; not publishing")
    return run


def _wait_for_queries_started_before(conn: sa.Connection, moment, timeout_s: float = PLAN_GRACE_S) -> None:
    """Let queries that may have been planned without the new partition finish first.

    A query that is still running after ``timeout_s`` took its snapshot long before the
    pointer moves, so it reads the old pointer and is safe either way.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not queries("ranking").queries_started_before(dbapi(conn), moment=moment):
            return
        time.sleep(0.01)


def _move_pointer(conn: sa.Connection, run: Run, rows: int) -> None:
    db = dbapi(conn)
    queries("ranking").supersede_published(db)
    queries("ranking").point_to(db, run_id=run.run_id, model_version=run.model_version)
    queries("ranking").mark_published(db, run_id=run.run_id, rows=rows)
