"""A real, tiny model (damped user + movie bias) to publish a ranking without TensorFlow.

The API only reads published rankings; to try it, load-test it or test it before a TFRS
champion exists, something has to be published. This baseline is the classic
``mu + b_user + b_movie`` predictor fitted on recsys.ratings in pandas (milliseconds),
so its scores are meaningful and tests can recompute them exactly. It is a rating model
without a list head, so it ranks by its predicted rating: the published ``score`` and
``predicted_rating`` are the same number. Never imported by the API process itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys.db import store
from recsys.model import registry


def baseline_scores(conn: sa.Connection, movie_damping: float = 25.0, user_damping: float = 10.0) -> pd.DataFrame:
    """Every user x movie pair: columns user_id, movie_id, score, predicted_rating (float32, equal).

    ``score`` is the ranking score, and a rating-only model ranks by its rating, so both
    columns hold the predicted rating, within the loaded data set's rating scale.
    """
    ratings = store.rating_triples(conn)
    users = store.user_ids(conn)
    movies = store.movie_ids(conn)
    mu = float(ratings["rating"].mean()) if len(ratings) else 3.0
    residual = ratings["rating"] - mu
    by_movie = residual.groupby(ratings["movie_id"])
    movie_bias = (by_movie.sum() / (by_movie.count() + movie_damping)).reindex(movies, fill_value=0.0)
    residual = residual - ratings["movie_id"].map(movie_bias).to_numpy()
    by_user = residual.groupby(ratings["user_id"])
    user_bias = (by_user.sum() / (by_user.count() + user_damping)).reindex(users, fill_value=0.0)
    grid = mu + user_bias.to_numpy()[:, None] + movie_bias.to_numpy()[None, :]
    scale = store.rating_scale(conn)
    grid = np.clip(grid, scale.low, scale.high).astype(np.float32)
    return pd.DataFrame(
        {
            "user_id": np.repeat(users.to_numpy(), len(movies)),
            "movie_id": np.tile(movies.to_numpy(), len(users)),
            "score": grid.ravel(),
            "predicted_rating": grid.ravel(),
        }
    )


def register_model_version(
    conn: sa.Connection, version: str, config: dict | None = None, *, champion: bool = False
) -> None:
    """Record the baseline in the registry (publishing needs a known version), as the champion if asked.

    ``registry.register_baseline`` is the registry's way in for a model without holdout
    metrics: under its lock, replacing the champion when ``champion``; a version already
    registered is left as it is.
    """
    registry.register_baseline(
        conn,
        version_id=version,
        data_fingerprint=store.newest_fingerprint(conn) or "none",
        config={"model": "bias-baseline", **(config or {})},
        champion=champion,
    )


def publish_baseline(engine: sa.Engine, version: str, *, champion: bool = True, movie_damping: float = 25.0) -> int:
    """Fit, register and publish the baseline as ``version``; return the precompute run id."""
    from recsys.scoring.from_frame import publish_scores

    with engine.begin() as conn:
        scores = baseline_scores(conn, movie_damping=movie_damping)
        register_model_version(conn, version, {"movie_damping": movie_damping}, champion=champion)
    return publish_scores(engine, version, scores)


def main(argv: list[str] | None = None) -> int:
    """``python -m recsys.api.baseline``: publish the baseline to the configured database, so
    the API can be tried before a TFRS champion exists (the precompute replaces it)."""
    import argparse

    from recsys.db.engine import database_url, make_engine

    parser = argparse.ArgumentParser(prog="python -m recsys.api.baseline", description=main.__doc__)
    parser.add_argument("--version", default="bias-baseline", help="model version id to register")
    args = parser.parse_args(argv)
    engine = make_engine(database_url())
    run_id = publish_baseline(engine, args.version, champion=False)
    print(f"published run {run_id} of model version {args.version!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
