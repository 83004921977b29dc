"""Publishing the two numbers of a pair, against the real PostgreSQL and ML-100K, no model.

``score`` is the ranking score (any finite real; ``rank`` follows it) and
``predicted_rating`` the predicted rating (1-5). A published run stores both, the
read-back check sees a wrong rating, and input that breaks either contract is refused
before the published ranking can change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsys.api.baseline import register_model_version
from recsys.scoring import from_frame, partitions, ranking, runs
from recsys.scoring.runs import PublishError
from tests.support.db import published, ranking_digest

VERSION = "publish-test-two-numbers"


@pytest.fixture(scope="module")
def version(db_engine: sa.Engine) -> str:
    with db_engine.begin() as conn:
        register_model_version(conn, VERSION, {"model": "random two numbers"})
    return VERSION


@pytest.fixture(scope="module")
def grid(db_engine: sa.Engine) -> tuple[np.ndarray, np.ndarray]:
    with db_engine.connect() as conn:
        users = conn.execute(sa.text("SELECT user_id FROM recsys.users ORDER BY user_id")).scalars().all()
        movies = conn.execute(sa.text("SELECT movie_id FROM recsys.movies ORDER BY movie_id")).scalars().all()
    return np.array(users, dtype=np.int64), np.array(movies, dtype=np.int64)


def two_numbers(users: np.ndarray, movies: np.ndarray, seed: int) -> pd.DataFrame:
    """Scores far outside 1..5 (negative too) and ratings in 1..5 whose order is unrelated."""
    rng = np.random.default_rng(seed)
    shape = (len(users), len(movies))
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, len(movies)),
            "movie_id": np.tile(movies, len(users)),
            "score": rng.normal(0.0, 40.0, shape).astype(np.float32).ravel(),
            "predicted_rating": rng.uniform(1.0, 5.0, shape).astype(np.float32).ravel(),
        }
    )


def stored(engine: sa.Engine, user_id: int) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(
            sa.text(
                "SELECT movie_id, score, predicted_rating, rank, seen FROM recsys.current_ranked_scores "
                "WHERE user_id = :u ORDER BY movie_id"
            ),
            conn,
            params={"u": user_id},
        )


def test_a_published_run_stores_the_score_and_the_rating(db_engine, version, grid):
    users, movies = grid
    frame = two_numbers(users, movies, seed=1)
    run_id = from_frame.publish_scores(db_engine, version, frame, shards=2)
    assert published(db_engine).run_id == run_id
    for user in (1, 17, 942):
        mine = frame[frame.user_id == user].sort_values("movie_id").reset_index(drop=True)
        rows = stored(db_engine, user)
        assert rows.movie_id.tolist() == mine.movie_id.tolist()
        # both columns hold exactly the float32 that was given
        assert rows.score.to_numpy(np.float32).tolist() == mine.score.tolist()
        assert rows.predicted_rating.to_numpy(np.float32).tolist() == mine.predicted_rating.tolist()
        # ranks follow the score (higher first, ties by movie id), not the rating
        unseen = rows[~rows.seen]
        by_score = unseen.assign(neg=-unseen.score.astype(np.float64)).sort_values(["neg", "movie_id"])
        assert by_score["rank"].tolist() == list(range(1, len(unseen) + 1))
        by_rating = unseen.sort_values(["predicted_rating", "movie_id"], ascending=[False, True])
        assert by_rating["rank"].tolist() != by_score["rank"].tolist()
    assert frame.score.min() < 0 and frame.score.max() > 5  # a ranking score has no range
    with db_engine.connect() as conn:
        top = conn.execute(
            sa.text(
                "SELECT rank, movie_id, score, predicted_rating FROM recsys.top_recommendations "
                "WHERE user_id = 17 AND rank <= 3 ORDER BY rank"
            )
        ).all()
    mine = stored(db_engine, 17).set_index("movie_id")
    assert [(r.score, r.predicted_rating) for r in top] == [
        (mine.score[r.movie_id], mine.predicted_rating[r.movie_id]) for r in top
    ]
    with db_engine.connect() as conn:  # its leaves and indexes on disk (bench/scale.py reports it), none once gone
        assert 40 * len(frame) < runs.run_bytes(conn, run_id) < 200 * len(frame)
        assert runs.run_bytes(conn, 10**9) == 0


def test_without_a_rating_the_score_is_the_rating(db_engine, version, grid):
    """A rating-only model ranks by its rating: publish_scores stores the score as both."""
    users, movies = grid
    frame = two_numbers(users, movies, seed=2).drop(columns="score").rename(columns={"predicted_rating": "score"})
    from_frame.publish_scores(db_engine, version, frame)
    rows = stored(db_engine, 17)
    assert rows.predicted_rating.tolist() == rows.score.tolist()
    assert rows.predicted_rating.notna().all()


def test_the_read_back_check_catches_a_wrong_rating(db_engine, version, grid, monkeypatch):
    """Ratings written to the wrong pairs (scores, ranks and movies right) are refused."""
    users, movies = grid
    if published(db_engine) is None:
        from_frame.publish_scores(db_engine, version, two_numbers(users, movies, seed=3))
    before, digest = published(db_engine), ranking_digest(db_engine)
    real = ranking.encode_rows
    monkeypatch.setattr(
        ranking,
        "encode_rows",
        lambda users, movies, scores, ratings, *rest: real(users, movies, scores, ratings[:, ::-1], *rest),
    )
    run_id = runs.start_run(db_engine, version, 1)
    few = np.array([1, 2, 3])
    rng = np.random.default_rng(4)
    scores = rng.normal(0, 10, (3, len(movies))).astype(np.float32)
    ratings = rng.uniform(1, 5, (3, len(movies))).astype(np.float32)
    with pytest.raises(PublishError, match=r"reads back as .*expected \(movie, score, seen, predicted_rating\)"):
        partitions.write_shard(db_engine, run_id, 0, few, movies, scores, ratings)
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": runs.shard_table(run_id, 0)}).scalar() is None
    runs.fail_run(db_engine, run_id, "test done")
    assert published(db_engine) == before and ranking_digest(db_engine) == digest


BAD_INPUT = [
    pytest.param("rating", 5.5, "predicted ratings outside \\[1.0, 5.0\\]", id="rating-above-5"),
    pytest.param("rating", 0.5, "predicted ratings outside \\[1.0, 5.0\\]", id="rating-below-1"),
    pytest.param("rating", np.nan, "NaN or infinite predicted ratings", id="rating-nan"),
    pytest.param("score", np.nan, "NaN or infinite scores", id="score-nan"),
    pytest.param("score", -np.inf, "NaN or infinite scores", id="score-minus-inf"),
    pytest.param("score", 1e39, "NaN or infinite scores", id="score-overflows-float32"),
]


@pytest.mark.parametrize(("column", "value", "message"), BAD_INPUT)
def test_a_bad_rating_or_score_is_refused_and_the_ranking_is_unchanged(
    db_engine, version, grid, column, value, message
):
    users, movies = grid
    if published(db_engine) is None:
        from_frame.publish_scores(db_engine, version, two_numbers(users, movies, seed=5))
    before, digest = published(db_engine), ranking_digest(db_engine)

    # one shard written directly
    run_id = runs.start_run(db_engine, version, 1)
    few = np.array([1, 2, 3])
    scores = np.linspace(-50, 50, 3 * len(movies)).reshape(3, -1)  # float64: converted to float32 first
    ratings = np.full((3, len(movies)), 3.0)
    (ratings if column == "rating" else scores)[1, 7] = value
    with pytest.raises(PublishError, match=message):
        partitions.write_shard(db_engine, run_id, 0, few, movies, scores, ratings)
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": runs.shard_table(run_id, 0)}).scalar() is None
    runs.fail_run(db_engine, run_id, "test done")

    # a whole ranking through publish_scores: any run it started is recorded as failed
    frame = two_numbers(users, movies, seed=6)
    name = "predicted_rating" if column == "rating" else "score"
    frame[name] = frame[name].astype(np.float64)  # so 1e39 is held as given, not cast on assignment
    frame.loc[12_345, name] = value
    if column == "score" and np.isnan(value):
        message = "scores must cover every user x movie pair"  # a NaN score is a hole: refused before a run starts
    with pytest.raises(PublishError, match=message):
        from_frame.publish_scores(db_engine, version, frame, shards=2)
    with db_engine.connect() as conn:
        later = conn.execute(
            sa.text("SELECT status FROM recsys.precompute_runs WHERE run_id > :r"), {"r": run_id}
        ).scalars()
        assert set(later) <= {"failed"}
    assert published(db_engine) == before and ranking_digest(db_engine) == digest


def test_ratings_must_match_the_scores_shape(db_engine, version, grid):
    users, movies = grid
    run_id = runs.start_run(db_engine, version, 1)
    try:
        with pytest.raises(PublishError, match="ratings shape"):
            partitions.write_shard(
                db_engine, run_id, 0, np.array([1]), movies, np.zeros((1, len(movies))), np.full((1, 3), 3.0)
            )
    finally:
        runs.fail_run(db_engine, run_id, "test done")


def test_the_seen_mask_from_loaded_ratings_is_the_one_the_database_gives(db_engine, grid):
    """The nightly job marks seen pairs from the ratings it scored with; a shard must get the same mask."""
    users, movies = grid
    shard = users[users % 4 == 1]
    with db_engine.connect() as conn:
        from_db = ranking.seen_mask(conn, shard, movies)
        rated = conn.execute(sa.text("SELECT user_id, movie_id FROM recsys.ratings")).all()
    every_user, every_movie = (np.array(column, dtype=np.int64) for column in zip(*rated, strict=True))
    # every rating, plus pairs of an unknown user and an unknown movie, which must be ignored
    every_user, every_movie = np.append(every_user, [10**6, shard[0]]), np.append(every_movie, [movies[0], 10**6])
    from_loaded = ranking.seen_in(every_user, every_movie, shard, movies)
    assert np.array_equal(from_loaded, from_db)
    assert 0 < from_loaded.sum() == int(np.isin(every_user[:-2], shard).sum()) < len(rated)
