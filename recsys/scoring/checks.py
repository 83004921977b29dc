"""What a shard and a run must satisfy before readers can see them.

Three checks, one per stage of ``partitions``: the model's output before anything is
written (``check_shard_input``), the shard's leaf after COPY and before it is attached
(``check_leaf``), and the run's row count before it is published (``check_complete``).
Each raises ``PublishError``; the published ranking is then unchanged.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from recsys.scoring.runs import PublishError, run_table

RATING_RANGE = (1.0, 5.0)  # a predicted rating outside it is a broken model (scores have no range)
READBACK_SAMPLE = 64  # rows per shard read back from the table and compared with what was ranked


def check_shard_input(
    run: sa.Row, shard: int, user_ids: np.ndarray, movie_ids: np.ndarray, scores: np.ndarray, ratings: np.ndarray
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
    low, high = RATING_RANGE
    if ratings.size and (ratings.min() < low or ratings.max() > high):
        raise PublishError(
            f"shard {shard}: predicted ratings outside [{low}, {high}] ({ratings.min()}..{ratings.max()})"
        )


def check_leaf(
    conn: sa.Connection,
    table: str,
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
    found = conn.execute(
        sa.text(
            f"SELECT t.user_id, t.rank, t.movie_id, t.score, t.seen, t.predicted_rating FROM {table} t "
            f"JOIN unnest(CAST(:users AS int[]), CAST(:ranks AS int[])) AS q(user_id, rank) USING (user_id, rank)"
        ),
        {"users": user_ids[rows].tolist(), "ranks": rank.tolist()},
    ).all()
    # real arrives as its shortest decimal text: compare as float32, the stored precision
    stored = {
        (r.user_id, r.rank): (
            r.movie_id,
            np.float32(r.score),
            r.seen,
            None if r.predicted_rating is None else np.float32(r.predicted_rating),
        )
        for r in found
    }
    for row, r, col in zip(rows.tolist(), rank.tolist(), cols.tolist(), strict=True):
        expected = (int(movie_ids[col]), np.float32(scores[row, col]), False, np.float32(ratings[row, col]))
        if stored.get((int(user_ids[row]), r)) != expected:
            raise PublishError(
                f"shard {shard}: user {user_ids[row]} rank {r} reads back as "
                f"{stored.get((int(user_ids[row]), r))}, expected (movie, score, seen, predicted_rating) {expected}"
            )


def check_complete(conn: sa.Connection, run: sa.Row) -> int:
    """Every shard was checked when written; here only that they add up to every user x movie."""
    table = run_table(run.run_id)
    stats = conn.execute(
        sa.text(
            f"SELECT (SELECT count(*) FROM {table}) AS rows, (SELECT count(*) FROM recsys.users) AS all_users, "
            f"(SELECT count(*) FROM recsys.movies) AS all_movies"
        )
    ).one()
    expected = stats.all_users * stats.all_movies
    if stats.rows != expected:
        raise PublishError(
            f"run {run.run_id} has {stats.rows} rows; expected {expected} "
            f"({stats.all_users} users x {stats.all_movies} movies)"
        )
    return stats.rows
