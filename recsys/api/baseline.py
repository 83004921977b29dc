"""A real, tiny model (damped user + movie bias) to publish a ranking without TensorFlow.

The API only reads published rankings; to try it, load-test it or test it before a TFRS
champion exists, something has to be published. This baseline is the classic
``mu + b_user + b_movie`` predictor fitted on recsys.ratings in pandas (milliseconds),
so its scores are meaningful and tests can recompute them exactly. It is a rating model
without a list head, so it ranks by its predicted rating: the published ``score`` and
``predicted_rating`` are the same number. Never imported by the API process itself.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import sqlalchemy as sa


def baseline_scores(conn: sa.Connection, movie_damping: float = 25.0, user_damping: float = 10.0) -> pd.DataFrame:
    """Every user x movie pair: columns user_id, movie_id, score, predicted_rating (float32, equal).

    ``score`` is the ranking score, and a rating-only model ranks by its rating, so both
    columns hold the predicted rating (1-5).
    """
    ratings = pd.read_sql(sa.text("SELECT user_id, movie_id, rating FROM recsys.ratings"), conn)
    users = pd.read_sql(sa.text("SELECT user_id FROM recsys.users ORDER BY user_id"), conn)["user_id"]
    movies = pd.read_sql(sa.text("SELECT movie_id FROM recsys.movies ORDER BY movie_id"), conn)["movie_id"]
    mu = float(ratings["rating"].mean()) if len(ratings) else 3.0
    residual = ratings["rating"] - mu
    by_movie = residual.groupby(ratings["movie_id"])
    movie_bias = (by_movie.sum() / (by_movie.count() + movie_damping)).reindex(movies, fill_value=0.0)
    residual = residual - ratings["movie_id"].map(movie_bias).to_numpy()
    by_user = residual.groupby(ratings["user_id"])
    user_bias = (by_user.sum() / (by_user.count() + user_damping)).reindex(users, fill_value=0.0)
    grid = mu + user_bias.to_numpy()[:, None] + movie_bias.to_numpy()[None, :]
    grid = np.clip(grid, 1.0, 5.0).astype(np.float32)
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
    """Record the baseline in recsys.model_versions (publishing needs a known version)."""
    if champion:
        conn.execute(sa.text("UPDATE recsys.model_versions SET status = 'retired' WHERE status = 'champion'"))
    conn.execute(
        sa.text(
            "INSERT INTO recsys.model_versions (version_id, data_fingerprint, split, config, metrics, "
            "artifact_uri, status, decision_reason) VALUES (:v, coalesce((SELECT fingerprint FROM "
            "recsys.datasets ORDER BY dataset_id DESC LIMIT 1), 'none'), 'all', CAST(:config AS jsonb), "
            "'{}'::jsonb, '', :status, 'baseline for the lookup API') ON CONFLICT (version_id) DO NOTHING"
        ),
        {
            "v": version,
            "config": json.dumps({"model": "bias-baseline", **(config or {})}),
            "status": "champion" if champion else "challenger",
        },
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
