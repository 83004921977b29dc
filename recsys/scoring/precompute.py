"""Score every user x movie pair with the champion model, shard by shard, and publish.

The exported model splits into a user tower, a movie tower and a pair scorer, so the
towers run once per user and once per movie and only the small pair part runs per pair
(docs/MODEL.md). Each shard's scores are checked against the model's own
``serving_default`` signature on a sample of pairs before they are written: a precompute
that disagrees with the model it claims to serve never gets published.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from recsys.data.movielens import MovieLens
from recsys.db.store import load_movielens, newest_dataset_id
from recsys.model import registry
from recsys.scoring import partitions, retention, runs
from recsys.scoring.commands import DEFAULT_SHARDS
from recsys.scoring.runs import PublishError, Run

log = logging.getLogger(__name__)

PARITY_SAMPLE = 256  # pairs per shard re-scored with serving_default
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class PrecomputeResult:
    run_id: int
    model_version: str
    rows: int
    seconds: float  # the whole job
    load_seconds: float  # of which: loading (and warming up) the SavedModel and the side features, once per process

    @property
    def pairs_per_second(self) -> float:
        """Score + write + publish throughput, after the one-time model load."""
        busy = self.seconds - self.load_seconds
        return self.rows / busy if busy > 0 else float("nan")


class ShardScorer:
    """One loaded model and one copy of the side features, shared by every shard of a run."""

    def __init__(self, artifact: Path | str, data: MovieLens):
        from recsys.model.export import load_model
        from recsys.model.inputs import movie_table, user_table

        self.model = load_model(artifact)
        self.users = user_table(data)
        self.movies = movie_table(data)
        self.user_ids = np.sort(self.users.index.to_numpy(np.int64))
        self.movie_ids = np.sort(self.movies.index.to_numpy(np.int64))
        self.rated = (data.ratings["user_id"].to_numpy(np.int64), data.ratings["movie_id"].to_numpy(np.int64))

    def warm_up(self) -> None:
        """Run every function the shards need once, so that one-time work is paid at load.

        A loaded signature's first call optimises its graph (measured: docs/ARCHITECTURE.md,
        "Precompute speed"); the movie tower runs once per process. Without this the first
        shard pays it, and the job's "after load" throughput would mix loading into scoring.
        """
        if len(self.user_ids):
            self.check_parity(self.user_ids[:1], self.score(self.user_ids[:1]), seed=0)

    @cached_property
    def movie_parts(self) -> dict:
        """Movie tower outputs for every movie, as tensors: computed once per process."""
        import tensorflow as tf

        from recsys.model.serving import tower_parts

        parts = tower_parts(self.model.signature("movie_tower"), self.movies.loc[self.movie_ids])
        return {k: tf.constant(v) for k, v in parts.items()}

    def score(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ranking scores, predicted ratings), each [len(user_ids), len(movie_ids)].

        The user tower runs once per user, the movie tower once per process, and
        ``serving.grid`` scores blocks of users against all movies: the same function the
        evaluation ranks with, so the published order is the evaluated one.
        """
        from recsys.model.serving import grid, tower_parts

        users = tower_parts(self.model.signature("user_tower"), self.users.loc[user_ids])
        scored = grid(self.model.signature("score_grid"), users, self.movie_parts)
        return scored["score"], scored["rating"]

    def seen(self, user_ids: np.ndarray) -> np.ndarray:
        """[len(user_ids), len(movie_ids)], True where the user rated the movie in the data scored."""
        from recsys.scoring.ranking import seen_in

        return seen_in(*self.rated, user_ids, self.movie_ids)

    def check_parity(self, user_ids: np.ndarray, scored: tuple[np.ndarray, np.ndarray], seed: int) -> float:
        """Largest difference between ``scored`` (scores, ratings) and the full model on a random sample of pairs."""
        import pandas as pd

        from recsys.model.inputs import pair_features
        from recsys.model.serving import outputs_in_chunks

        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(user_ids), PARITY_SAMPLE)
        cols = rng.integers(0, len(self.movie_ids), PARITY_SAMPLE)
        pairs = pd.DataFrame({"user_id": user_ids[rows], "movie_id": self.movie_ids[cols]})
        features = pair_features(pairs, self.users, self.movies)
        # One call for both outputs: the full model is the costly part of the check.
        full = outputs_in_chunks(self.model.signature("serving_default"), features, ("score", "rating"))
        return max(
            float(np.max(np.abs(full[key] - part[rows, cols])))
            for key, part in zip(("score", "rating"), scored, strict=True)
        )


def artifact_uri(engine: sa.Engine, model_version: str) -> str:
    uri = registry.artifact_uri(engine, model_version)
    if uri is None:
        raise PublishError(f"unknown model version {model_version!r}")
    return uri


_last: tuple[tuple, ShardScorer] | None = None  # (key, scorer) of the last model and feature store loaded
_loading = threading.Lock()


def load_scorer(engine: sa.Engine, run_id: int) -> ShardScorer:
    """The run's model and the feature store, loaded once per process and reused by its other shards.

    ``airflow dags test`` (the pipeline script) and a worker that runs several mapped shards
    in one process would otherwise load the SavedModel and the feature store again for
    every shard (measured: docs/ARCHITECTURE.md, "Precompute speed"). The key names the database, the
    model artifact and the loaded data set, so new data or a new model is loaded afresh.
    """
    run = runs.run_info(engine, run_id)
    with engine.connect() as conn:
        dataset = newest_dataset_id(conn)
    key = (engine.url.render_as_string(hide_password=True), artifact_uri(engine, run.model_version), dataset)
    global _last
    with _loading:
        if _last is None or _last[0] != key:
            scorer = ShardScorer(key[1], load_movielens(engine))
            scorer.warm_up()
            _last = (key, scorer)
        return _last[1]


def check_and_write(
    engine: sa.Engine,
    scorer: ShardScorer,
    run: Run,
    shard: int,
    user_ids: np.ndarray,
    scored: tuple[np.ndarray, np.ndarray],
) -> int:
    """Check a scored shard (scores, ratings) against the full model on a sample of pairs, then write it."""
    if len(user_ids):
        gap = scorer.check_parity(user_ids, scored, seed=run.run_id * 1000 + shard)
        if gap > PARITY_TOLERANCE:
            raise PublishError(f"shard {shard}: tower scores differ from the model by {gap:.2e}")
    scores, ratings = scored
    return partitions.write_shard(
        engine, run.run_id, shard, user_ids, scorer.movie_ids, scores, ratings, seen=scorer.seen(user_ids)
    )


def score_shard(engine: sa.Engine, run_id: int, shard: int, scorer: ShardScorer | None = None) -> int:
    """Score, check and write one shard; safe to retry (the shard's table is replaced whole)."""
    run = runs.run_info(engine, run_id)
    scorer = scorer or load_scorer(engine, run_id)
    user_ids = runs.shard_users(scorer.user_ids, shard, run.shards)
    return check_and_write(engine, scorer, run, shard, user_ids, scorer.score(user_ids))


def precompute(
    engine: sa.Engine,
    *,
    shards: int = DEFAULT_SHARDS,
    workers: int = 2,
    keep: int = 2,
    model_version: str | None = None,
) -> PrecomputeResult:
    """The whole nightly job in one process: start, score and write shards, publish, clean up.

    A pipeline: this thread scores one shard after another (TensorFlow already spreads one
    shard over every core), and up to ``workers`` threads check and write the scored shards
    (parity sample, rank, encode, COPY, index, check), so writing shard k overlaps scoring
    shard k+1. More, smaller shards shorten the last write, which nothing overlaps.
    """
    started = time.perf_counter()
    run_id = runs.start_run(engine, model_version, shards)
    try:
        scorer = load_scorer(engine, run_id)
        loaded = time.perf_counter()
        run = runs.run_info(engine, run_id)
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="write-shard") as writers:
            writes: list[Future] = []
            for shard in range(shards):
                # At most `workers` writes pending before the next shard is scored: a scored shard
                # waits for a writer instead of queueing, so memory holds workers + 1 scored shards, not all.
                while len(pending := [w for w in writes if not w.done()]) > max(1, workers):
                    wait(pending, return_when=FIRST_COMPLETED)
                for done in (w for w in writes if w.done()):
                    done.result()  # a failed write stops the run before more scoring
                user_ids = runs.shard_users(scorer.user_ids, shard, run.shards)
                scored = scorer.score(user_ids)
                writes.append(writers.submit(check_and_write, engine, scorer, run, shard, user_ids, scored))
            for write in writes:
                write.result()
        published = partitions.publish_run(engine, run_id)
    except BaseException as exc:
        runs.fail_run(engine, run_id, f"{type(exc).__name__}: {exc}")
        raise
    retention.cleanup(engine, keep=keep)
    return PrecomputeResult(
        run_id, published.model_version, published.rows, time.perf_counter() - started, loaded - started
    )
