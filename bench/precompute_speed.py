"""Precompute speed: end-to-end pairs/s against the ways the pairs could be scored instead.

Run after `make run` (or any database with data and a champion model):

    .venv/bin/python bench/precompute_speed.py [--shards 4] [--workers 2] [--request-users 20]

All rows are measured in this one run, side by side, on the same model and data:
- end to end: `recsys precompute` as the nightly job runs it (score + COPY + index +
  check + publish), after the one-time load and warm-up of the SavedModel, and the whole
  job with it (a new process pays ~8 s just to import TensorFlow);
- towers only: the user and movie towers once each, the pair part per pair (no writing),
  through `score_grid` (blocks of users x all movies, what the job uses) and through
  `score_pairs` one user at a time (what it did before);
- full model per pair: the `serving_default` signature on all 1.6 M pairs in 64 k batches;
- per request: the original FastAPI design, one request per user scoring its candidate
  list (all movies) through the full model, measured on a sample of users.
Target: end to end >= 500,000 pairs/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from recsys.db.engine import database_url, make_engine
from recsys.db.store import load_movielens
from recsys.model.inputs import pair_features
from recsys.model.serving import tower_parts
from recsys.scoring import runs
from recsys.scoring.commands import DEFAULT_SHARDS
from recsys.scoring.precompute import ShardScorer, artifact_uri, precompute

TARGET = 500_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=DEFAULT_SHARDS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--request-users", type=int, default=20)
    args = parser.parse_args()

    engine = make_engine(database_url())
    version = runs.champion_version(engine)
    data = load_movielens(engine)
    scorer = ShardScorer(artifact_uri(engine, version), data)
    scorer.warm_up()
    users, movies = scorer.user_ids, scorer.movie_ids
    pairs = len(users) * len(movies)
    print(f"model {version}: {len(users)} users x {len(movies)} movies = {pairs:,} pairs\n")

    rows = []
    result = precompute(engine, shards=args.shards, workers=args.workers, keep=1)
    rows.append(("end to end after model load (score + COPY + index + publish)", result.rows,
                 result.seconds - result.load_seconds))  # fmt: skip
    rows.append(("whole job incl. loading the SavedModel", result.rows, result.seconds))

    started = time.perf_counter()
    scorer.score(users)
    rows.append(("towers once, score_grid per block of users (no write)", pairs, time.perf_counter() - started))
    started = time.perf_counter()
    parts = tower_parts(scorer.model.signature("user_tower"), scorer.users.loc[users])
    movie_parts = {f"movie_{k}": v for k, v in scorer.movie_parts.items()}
    for i in range(len(users)):
        scorer.model.signature("score_pairs")(**{f"user_{k}": v[i : i + 1] for k, v in parts.items()}, **movie_parts)
    rows.append(("towers once, score_pairs per user (no write)", pairs, time.perf_counter() - started))

    grid = pd.DataFrame({"user_id": np.repeat(users, len(movies)), "movie_id": np.tile(movies, len(users))})
    started = time.perf_counter()
    scorer.model.predict_features(pair_features(grid, scorer.users, scorer.movies))
    rows.append(("full model per pair, 64k batches", pairs, time.perf_counter() - started))

    sample = users[:: max(1, len(users) // args.request_users)][: args.request_users]
    started = time.perf_counter()
    for user in sample:
        request = pd.DataFrame({"user_id": user, "movie_id": movies})
        scorer.model.predict_features(pair_features(request, scorer.users, scorer.movies))
    rows.append(
        (f"per request, 1 user x {len(movies)} candidates ({len(sample)} users)", len(sample) * len(movies),
         time.perf_counter() - started)
    )  # fmt: skip

    print("| method | pairs | seconds | pairs/s |\n|---|---:|---:|---:|")
    for name, count, seconds in rows:
        print(f"| {name} | {count:,} | {seconds:.2f} | {count / seconds:,.0f} |")
    end_to_end = rows[0][1] / rows[0][2]
    per_request = rows[-1][1] / rows[-1][2]
    print(f"\nend to end vs per-request scoring: {end_to_end / per_request:.1f}x")
    print(
        f"target >= {TARGET:,} pairs/s end to end: {'met' if end_to_end >= TARGET else 'NOT met'} "
        f"(model load and warm-up {result.load_seconds:.1f} s, once per process, not counted; "
        f"whole job {rows[1][1] / rows[1][2]:,.0f} pairs/s)"
    )


if __name__ == "__main__":
    main()
