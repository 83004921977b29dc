"""What a shard and a run must satisfy before readers can see them.

Three checks, one per stage of ``partitions``: the model's output before anything is
written (``check_shard_input``), the shard's leaf after COPY and before it is attached
(``check_leaf``), and the run's row count before it is published (``check_complete``).
Each raises ``PublishError``; the published ranking is then unchanged. A fourth,
``check_published``, re-checks what readers see once a run is published (the precompute
DAG's ``validate``) and raises ``PublishedRankingInvalid``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa
from psycopg import sql

from recsys.db.sql import dbapi, queries
from recsys.db.store import catalogue_size, rating_scale
from recsys.errors import RecsysError
from recsys.scoring.runs import PublishError, Run, run_table_sql

READBACK_SAMPLE = 64  # rows per shard read back from the table and compared with what was ranked


class PublishedRankingInvalid(RecsysError):
    """What readers see through the published views is not a complete, well-formed ranking."""


def rating_range(bind: sa.Engine | sa.Connection) -> tuple[float, float]:
    """The predicted ratings a sound model serves: the loaded data set's scale, which each model
    clips to (ML-100K 1-5, the MovieLens CSV releases 0.5-5); outside it is a broken model.
    Scores have no range."""
    scale = rating_scale(bind)
    return scale.low, scale.high


def check_shard_input(
    run: Run,
    shard: int,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    scores: np.ndarray,
    ratings: np.ndarray,
    ratings_within: tuple[float, float],
) -> None:
    if run.status != "running":
        raise PublishError(f"run {run.run_id} is {run.status}; shards can only be written while it runs")
    if not 0 <= shard < run.shards:
        raise PublishError(f"shard {shard} is outside 0..{run.shards - 1}")
    if scores.shape != (len(user_ids), len(movie_ids)):
        raise PublishError(f"scores shape {scores.shape} != ({len(user_ids)}, {len(movie_ids)})")
    if ratings.shape != scores.shape:
        raise PublishError(f"ratings shape {ratings.shape} != scores shape {scores.shape}")
    if np.any(user_ids % run.shards != shard):
        raise PublishError(f"shard {shard} was given users of other shards")
    if not np.isfinite(scores).all():
        raise PublishError(f"shard {shard}: the model produced NaN or infinite scores")
    if not np.isfinite(ratings).all():
        raise PublishError(f"shard {shard}: the model produced NaN or infinite predicted ratings")
    low, high = ratings_within
    if ratings.size and (ratings.min() < low or ratings.max() > high):
        raise PublishError(
            f"shard {shard}: predicted ratings outside [{low}, {high}] ({ratings.min()}..{ratings.max()})"
        )


def check_leaf(
    conn: sa.Connection,
    table: sql.Composable,
    shard: int,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    scores: np.ndarray,
    ratings: np.ndarray,
    ranks: np.ndarray,
    order: np.ndarray,
    seed: int,
) -> None:
    """What a reader relies on, checked on the shard's leaf before it is attached.

    The ranks were made contiguous per user by construction (``ranking.ranks``) and are
    checked here again in numpy; the leaf holds exactly the rows sent (COPY's own count,
    checked by the caller) and no user has a rank twice (the unique index). Then a random
    sample of rows is read back the way readers look them up, by (user, rank), and must
    carry the movie, score, flag and predicted rating that were ranked there: what goes
    wrong between numpy and the table (encoding, ordering, a column swapped) shows up as a
    wrong row. It replaced an aggregate scan of every row, which cost far more and checked
    counts but could not see a movie in the wrong place (docs/ARCHITECTURE.md).
    """
    unseen = (ranks > 0).sum(axis=1)
    if np.any(ranks.max(axis=1, initial=0) != unseen) or np.any(ranks.min(axis=1, where=ranks > 0, initial=1) != 1):
        raise PublishError(f"shard {shard}: ranks are not 1..n over each user's unseen movies")
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(unseen)
    if not len(candidates):
        return
    rows = rng.choice(candidates, READBACK_SAMPLE)
    rank = (rng.random(READBACK_SAMPLE) * unseen[rows]).astype(np.int64) + 1
    cols = order[rows, rank - 1]
    # The leaf is not attached yet, so it is read by its own name (composed: see runs.run_table_sql).
    found = (
        dbapi(conn)
        .execute(
            sql.SQL(
                "SELECT t.user_id, t.rank, t.movie_id, t.score, t.seen, t.predicted_rating FROM {} t "
                "JOIN unnest(CAST(%(users)s AS int[]), CAST(%(ranks)s AS int[])) AS q(user_id, rank) "
                "USING (user_id, rank)"
            ).format(table),
            {"users": user_ids[rows].tolist(), "ranks": rank.tolist()},
        )
        .fetchall()
    )
    # real arrives as its shortest decimal text: compare as float32, the stored precision
    stored = {
        (user, r): (movie, np.float32(score), seen, None if rating is None else np.float32(rating))
        for user, r, movie, score, seen, rating in found
    }
    for row, r, col in zip(rows.tolist(), rank.tolist(), cols.tolist(), strict=True):
        expected = (int(movie_ids[col]), np.float32(scores[row, col]), False, np.float32(ratings[row, col]))
        if stored.get((int(user_ids[row]), r)) != expected:
            raise PublishError(
                f"shard {shard}: user {user_ids[row]} rank {r} reads back as "
                f"{stored.get((int(user_ids[row]), r))}, expected (movie, score, seen, predicted_rating) {expected}"
            )


def check_complete(conn: sa.Connection, run: Run) -> int:
    """Every shard was checked when written; here only that they add up to every user x movie."""
    # The run table is not attached yet, so it is counted by its own name (see runs.run_table_sql).
    (rows,) = (
        dbapi(conn)
        .execute(sql.SQL("SELECT (SELECT count(*) FROM {}) AS rows").format(run_table_sql(run.run_id)))
        .fetchone()
    )
    all_users, all_movies = catalogue_size(conn)
    expected = all_users * all_movies
    if rows != expected:
        raise PublishError(
            f"run {run.run_id} has {rows} rows; expected {expected} ({all_users} users x {all_movies} movies)"
        )
    return rows


def check_published(engine: sa.Engine, run_id: int) -> dict[str, Any]:
    """Check what readers see now: ``run_id`` is the published run and its ranking is whole.

    Through ``recsys.current_ranked_scores``, as readers read it: users x movies rows,
    finite ranking scores (any range), predicted ratings within ``rating_range`` or NULL (a
    run published before migration 0007), and each user's unseen movies ranked 1..n.
    Returns ``{"run_id", "rows"}``; raises ``PublishedRankingInvalid`` listing every problem.
    """
    with engine.connect() as conn:
        low, high = rating_range(conn)
        db = dbapi(conn)
        published, rows, bad_scores, bad_ratings, expected = queries("ranking").published_stats(db, low=low, high=high)
        gaps = queries("ranking").published_rank_gaps(db)
    problems = []
    if published != run_id:
        problems.append(f"published run is {published}, expected {run_id} (a newer run won?)")
    if rows != expected:
        problems.append(f"{rows} rows, expected users x movies = {expected}")
    if bad_scores:
        problems.append(f"{bad_scores} NaN or infinite ranking scores")
    if bad_ratings:
        problems.append(f"{bad_ratings} NaN or predicted ratings outside {low:g}-{high:g}")
    if gaps:
        problems.append(f"{gaps} user(s) with non-contiguous ranks")
    if problems:
        raise PublishedRankingInvalid("published ranking failed validation: " + "; ".join(problems))
    return {"run_id": published, "rows": rows}
