"""Nightly precompute against the real PostgreSQL with a real (tiny) trained model.

What readers rely on: every user x movie pair, contiguous ranks among unseen movies by
the ranking score, scores and predicted ratings equal to the exported model's, and a
published ranking that no failure or concurrent run can replace with a partial or empty one.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsys.config import get_settings
from recsys.db.store import load_movielens
from recsys.scoring import partitions, ranking, retention, runs
from recsys.scoring.precompute import precompute, score_shard
from recsys.scoring.runs import PublishError
from tests.support.db import published, ranking_digest

USERS, MOVIES = 943, 1682


@pytest.fixture(scope="module")
def champion(tiny_champion: str) -> str:
    return tiny_champion


def test_precompute_publishes_every_pair_with_model_scores(db_engine, champion):
    result = precompute(db_engine, shards=3, workers=2, keep=1, model_version=champion)
    assert result.rows == USERS * MOVIES == 1_586_126
    with db_engine.connect() as conn:
        count, seen, users, versions = conn.execute(
            sa.text(
                "SELECT count(*), count(*) FILTER (WHERE seen), count(DISTINCT user_id), "
                "count(DISTINCT model_version) FROM recsys.current_ranked_scores"
            )
        ).one()
        bad_ranks = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT user_id, count(rank) n, max(rank) hi, count(DISTINCT rank) d, "
                "count(*) FILTER (WHERE NOT seen) unseen FROM recsys.current_ranked_scores GROUP BY user_id) u "
                "WHERE n <> hi OR d <> n OR n <> unseen"
            )
        ).scalar()
        seen_match = conn.execute(
            sa.text(
                "SELECT count(*) FROM recsys.current_ranked_scores s JOIN recsys.ratings r "
                "USING (user_id, movie_id) WHERE s.seen AND s.rank IS NULL"
            )
        ).scalar()
        sample = pd.read_sql(
            sa.text(
                "SELECT user_id, movie_id, score, predicted_rating FROM recsys.current_ranked_scores "
                "WHERE (user_id * 7919 + movie_id) % 997 = 0 LIMIT 300"
            ),
            conn,
        )
        top = pd.read_sql(
            sa.text("SELECT movie_id, score, rank FROM recsys.current_ranked_scores WHERE user_id = 1 AND rank <= 50"),
            conn,
        ).sort_values("rank")
    assert (count, seen, users, versions) == (1_586_126, 100_000, USERS, 1)
    assert bad_ranks == 0
    assert seen_match == 100_000
    # ranks follow scores, ties by lower movie id
    assert list(top.sort_values(["score", "movie_id"], ascending=[False, True])["rank"]) == list(top["rank"])
    # precomputed scores and ratings equal the exported model's own serving signature
    from recsys.model.export import load_model
    from recsys.model.inputs import movie_table, pair_features, user_table
    from recsys.model.serving import call_in_chunks

    ml = load_movielens(db_engine)
    model = load_model(_artifact(db_engine, champion))
    features = pair_features(sample[["user_id", "movie_id"]], user_table(ml), movie_table(ml))
    serving = model.signature("serving_default")
    np.testing.assert_allclose(sample["score"].to_numpy(), call_in_chunks(serving, features, "score"), atol=1e-4)
    ratings = sample["predicted_rating"].to_numpy()
    np.testing.assert_allclose(ratings, call_in_chunks(serving, features, "rating"), atol=1e-4)
    assert ((ratings >= 1) & (ratings <= 5)).all()


def test_failed_run_leaves_previous_ranking(db_engine, champion):
    if published(db_engine) is None:
        precompute(db_engine, shards=2, model_version=champion)
    before, digest = published(db_engine), ranking_digest(db_engine)
    run_id = runs.start_run(db_engine, champion, 2)
    score_shard(db_engine, run_id, 0)
    with pytest.raises(PublishError, match=r"incomplete: shard\(s\) \[1\] not written"):
        partitions.publish_run(db_engine, run_id)
    users = np.array([1, 3, 5])
    with pytest.raises(PublishError, match="NaN"):
        partitions.write_shard(
            db_engine,
            run_id,
            1,
            users,
            np.arange(1, MOVIES + 1),
            np.full((3, MOVIES), np.nan),
            np.full((3, MOVIES), 3.0),
        )
    runs.fail_run(db_engine, run_id, "test failure")
    assert published(db_engine) == before and ranking_digest(db_engine) == digest
    retention.cleanup(db_engine, keep=1)
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": runs.run_table(run_id)}).scalar() is None
        status = conn.execute(sa.text("SELECT status FROM recsys.precompute_runs WHERE run_id = :r"), {"r": run_id})
        assert status.scalar() == "failed"


def test_grid_scoring_equals_one_user_at_a_time(db_engine, champion):
    """score_grid (blocks of users x all movies) agrees with score_pairs one user at a time, for both outputs."""
    from recsys.model.serving import tower_parts
    from recsys.scoring.precompute import ShardScorer

    scorer = ShardScorer(_artifact(db_engine, champion), load_movielens(db_engine))
    users = scorer.user_ids[:40]
    scores, ratings = scorer.score(users)
    parts = tower_parts(scorer.model.signature("user_tower"), scorer.users.loc[users])
    movies = {f"movie_{k}": v for k, v in scorer.movie_parts.items()}
    for i in range(len(users)):
        one = scorer.model.signature("score_pairs")(**{f"user_{k}": v[i : i + 1] for k, v in parts.items()}, **movies)
        np.testing.assert_allclose(scores[i], one["score"].numpy(), atol=1e-5)
        np.testing.assert_allclose(ratings[i], one["rating"].numpy(), atol=1e-5)
    assert ratings.min() >= 1 and ratings.max() <= 5 and not np.array_equal(scores, ratings)


def test_a_failed_shard_write_stops_the_run_and_keeps_the_ranking(db_engine, champion, monkeypatch):
    if published(db_engine) is None:
        precompute(db_engine, shards=2, model_version=champion)
    before, digest = published(db_engine), ranking_digest(db_engine)
    real = partitions.write_shard

    def failing(engine, run_id, shard, *args, **kwargs):
        if shard == 1:
            raise PublishError("disk full (simulated)")
        return real(engine, run_id, shard, *args, **kwargs)

    monkeypatch.setattr(partitions, "write_shard", failing)
    with pytest.raises(PublishError, match="simulated"):
        precompute(db_engine, shards=4, workers=1, model_version=champion)
    assert published(db_engine) == before and ranking_digest(db_engine) == digest
    with db_engine.connect() as conn:
        status, error = conn.execute(
            sa.text("SELECT status, error FROM recsys.precompute_runs ORDER BY run_id DESC LIMIT 1")
        ).one()
    assert status == "failed" and "simulated" in error


@pytest.mark.parametrize("output", ["score", "rating"])
def test_scores_that_disagree_with_the_model_are_never_published(db_engine, champion, monkeypatch, output):
    """The parity sample catches a scoring path that drifts from serving_default, in either output."""
    from recsys.scoring.precompute import ShardScorer

    if published(db_engine) is None:
        precompute(db_engine, shards=2, model_version=champion)
    before, digest = published(db_engine), ranking_digest(db_engine)
    real = ShardScorer.score

    def drifted(self, users):
        scores, ratings = real(self, users)
        if output == "score":
            return scores + np.float32(0.01), ratings
        return scores, ratings + np.float32(0.01)

    monkeypatch.setattr(ShardScorer, "score", drifted)
    with pytest.raises(PublishError, match="tower scores differ from the model by 1.0"):
        precompute(db_engine, shards=2, model_version=champion)
    assert published(db_engine) == before and ranking_digest(db_engine) == digest


def test_a_shard_whose_rows_are_misplaced_is_refused(db_engine, champion, monkeypatch):
    """Rows read back by (user, rank) must carry the movie, score and rating ranked there."""
    real = ranking.encode_rows
    monkeypatch.setattr(ranking, "encode_rows", lambda users, movies, *rest: real(users, movies[::-1], *rest))
    run_id = runs.start_run(db_engine, champion, 1)
    users, movies = np.array([1, 2, 3]), np.arange(1, MOVIES + 1)
    scores = np.random.default_rng(0).normal(0, 10, (3, MOVIES))
    ratings = np.random.default_rng(1).uniform(1, 5, (3, MOVIES))
    with pytest.raises(PublishError, match="reads back as"):
        partitions.write_shard(db_engine, run_id, 0, users, movies, scores, ratings)
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": runs.shard_table(run_id, 0)}).scalar() is None
    runs.fail_run(db_engine, run_id, "test done")


def test_scored_shards_wait_for_a_writer_instead_of_piling_up(db_engine, champion, monkeypatch):
    """Memory is bounded by the writers, not the shard count: with 1 writer slower than scoring,
    at most 2 scored shards are held at once (it held all 6 before)."""
    import recsys.scoring.precompute as job

    held, most, lock = [0], [0], threading.Lock()
    real_score, real_write = job.ShardScorer.score, job.check_and_write

    def score(self, user_ids):
        scored = real_score(self, user_ids)
        if len(user_ids) == 1:  # the warm-up's one user (a scorer loaded under the patch), not a shard
            return scored
        with lock:
            held[0] += 1
            most[0] = max(most[0], held[0])
        return scored

    def slow_write(*args):
        threading.Event().wait(0.5)  # a writer slower than scoring, as COPY is on a large shard
        rows = real_write(*args)
        with lock:
            held[0] -= 1
        return rows

    monkeypatch.setattr(job.ShardScorer, "score", score)
    monkeypatch.setattr(job, "check_and_write", slow_write)
    result = precompute(db_engine, shards=6, workers=1, keep=1, model_version=champion)
    assert result.rows == USERS * MOVIES and held[0] == 0
    assert most[0] == 2


def test_a_catalogue_over_the_pair_limit_is_refused_before_anything_is_written(db_engine, champion, monkeypatch):
    """RECSYS_MAX_PAIRS: one line naming the sizes and the setting; no run row, no table, same ranking."""
    before, digest = published(db_engine), ranking_digest(db_engine)
    monkeypatch.setenv("RECSYS_MAX_PAIRS", str(USERS * MOVIES - 1))
    get_settings.cache_clear()
    count = "SELECT count(*), max(run_id) FROM recsys.precompute_runs"
    with db_engine.connect() as conn:
        runs_before = conn.execute(sa.text(count)).one()
    try:
        with pytest.raises(PublishError) as refused:
            precompute(db_engine, shards=2, model_version=champion)
    finally:
        get_settings.cache_clear()
    assert str(refused.value) == (
        f"943 users x 1,682 movies = 1,586,126 pairs, more than RECSYS_MAX_PAIRS ({USERS * MOVIES - 1:,}) rows of "
        "one published ranking; raise it if the database has room for them"
    )
    with db_engine.connect() as conn:
        assert conn.execute(sa.text(count)).one() == runs_before
    assert published(db_engine) == before and ranking_digest(db_engine) == digest
    at_the_limit = runs.start_run(db_engine, champion, 1, max_pairs=USERS * MOVIES)
    assert at_the_limit > (runs_before[1] or 0)
    runs.fail_run(db_engine, at_the_limit, "test done")


def test_a_run_missing_users_is_not_published(db_engine, champion):
    before = published(db_engine)
    run_id = runs.start_run(db_engine, champion, 1)
    movies = np.arange(1, MOVIES + 1)
    few = np.array([1, 2, 3])  # a shard writer that lost most of its users
    grid = np.full((3, MOVIES), 3.0, dtype=np.float32)
    partitions.write_shard(db_engine, run_id, 0, few, movies, grid, grid)
    with pytest.raises(PublishError, match=f"has {3 * MOVIES} rows; expected {USERS * MOVIES}"):
        partitions.publish_run(db_engine, run_id)
    runs.fail_run(db_engine, run_id, "test done")
    assert published(db_engine) == before


def test_shard_retry_is_idempotent(db_engine, champion):
    run_id = runs.start_run(db_engine, champion, 2)
    first = score_shard(db_engine, run_id, 1)
    second = score_shard(db_engine, run_id, 1)
    with db_engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT count(*) FROM {runs.shard_table(run_id, 1)}")).scalar()
    assert first == second == rows
    runs.fail_run(db_engine, run_id, "test done")


def test_newest_concurrent_run_wins(db_engine, champion):
    before = published(db_engine)
    older = runs.start_run(db_engine, champion, 1)
    newer = runs.start_run(db_engine, champion, 1)
    with pytest.raises(PublishError, match="failed"):
        score_shard(db_engine, older, 0)
    score_shard(db_engine, newer, 0)
    partitions.publish_run(db_engine, newer)
    after = published(db_engine)
    assert after.run_id == newer and (before is None or before.run_id < newer)
    with pytest.raises(PublishError, match="cannot be published"):
        partitions.publish_run(db_engine, older)


def test_readers_never_see_a_partial_ranking_during_publish(db_engine, champion):
    """Publish twice while readers query; every answer is one complete ranking of one run."""
    users = np.arange(1, USERS + 1)
    movies = np.arange(1, MOVIES + 1)
    rng = np.random.default_rng(0)

    def publish_random() -> None:
        run_id = runs.start_run(db_engine, champion, 2)
        for shard in range(2):
            mine = users[users % 2 == shard]
            shape = (len(mine), MOVIES)
            partitions.write_shard(
                db_engine, run_id, shard, mine, movies, rng.normal(0, 10, shape), rng.uniform(1, 5, shape)
            )
        partitions.publish_run(db_engine, run_id)

    answers: list[tuple] = []
    stop = threading.Event()

    def reader() -> None:
        with db_engine.connect() as conn:
            while not stop.is_set():
                row = conn.execute(
                    sa.text(
                        "SELECT count(*), count(DISTINCT run_id), count(rank) FROM recsys.current_ranked_scores "
                        "WHERE user_id = 42"
                    )
                ).one()
                answers.append(tuple(row))
                conn.commit()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(2):
            publish_random()
    finally:
        stop.set()
        thread.join()
    assert len(answers) > 10
    unseen_42 = MOVIES - _rated(db_engine, 42)
    assert set(answers) == {(MOVIES, 1, unseen_42)}


def test_cleanup_keeps_the_newest_superseded_runs(db_engine, champion):
    retention.cleanup(db_engine, keep=1)
    with db_engine.connect() as conn:
        kept = conn.execute(
            sa.text(
                "SELECT count(*) FROM recsys.precompute_runs WHERE status IN ('superseded', 'published') "
                "AND to_regclass('recsys.ranked_scores_r' || run_id) IS NOT NULL"
            )
        ).scalar()
        orphans = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'recsys' AND c.relname ~ '^ranked_scores_r[0-9]+$' AND NOT EXISTS "
                "(SELECT 1 FROM recsys.precompute_runs r WHERE c.relname = 'ranked_scores_r' || r.run_id "
                "AND r.status IN ('superseded', 'published', 'running'))"
            )
        ).scalar()
        attached = conn.execute(
            sa.text(
                "SELECT array_agg(c.relname::text) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'recsys.ranked_scores'::regclass"
            )
        ).scalar()
    assert kept <= 2 and orphans == 0
    # only the published run stays attached: readers' plans need not lock the others
    assert attached == [f"ranked_scores_r{published(db_engine).run_id}"]


def _rated(engine: sa.Engine, user_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM recsys.ratings WHERE user_id = :u"), {"u": user_id}).scalar()


def _artifact(engine: sa.Engine, version: str) -> Path:
    with engine.connect() as conn:
        return Path(
            conn.execute(
                sa.text("SELECT artifact_uri FROM recsys.model_versions WHERE version_id = :v"), {"v": version}
            ).scalar()
        )
