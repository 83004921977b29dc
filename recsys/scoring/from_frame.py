"""Publish a whole ranking given as a long frame, for tests and tools (the API's baseline)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys.scoring import partitions, runs
from recsys.scoring.runs import PublishError


def publish_scores(engine: sa.Engine, model_version: str, frame: pd.DataFrame, shards: int = 1) -> int:
    """Publish a full ranking given as a long frame, for tests and tools.

    Columns user_id, movie_id, score (the ranking score) and optionally predicted_rating;
    without it the rating is the score itself, which is what a rating-only model means
    (it ranks by its predicted rating).
    """
    matrix = frame.pivot(index="user_id", columns="movie_id", values="score").sort_index().sort_index(axis=1)
    if matrix.isna().to_numpy().any():
        raise PublishError("scores must cover every user x movie pair")
    user_ids, movie_ids = matrix.index.to_numpy(np.int64), matrix.columns.to_numpy(np.int64)
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, which write_shard refuses
        values = matrix.to_numpy(np.float32)
        if "predicted_rating" in frame.columns:
            rated = frame.pivot(index="user_id", columns="movie_id", values="predicted_rating")
            # a missing rating becomes NaN here, which write_shard refuses too
            ratings = rated.reindex(index=matrix.index, columns=matrix.columns).to_numpy(np.float32)
        else:
            ratings = values
    run_id = runs.start_run(engine, model_version, shards)
    try:
        for shard in range(shards):
            mask = user_ids % shards == shard
            partitions.write_shard(engine, run_id, shard, user_ids[mask], movie_ids, values[mask], ratings[mask])
        partitions.publish_run(engine, run_id)
    except Exception as exc:
        runs.fail_run(engine, run_id, str(exc))
        raise
    return run_id
