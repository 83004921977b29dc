"""The structured generator makes data with real data's structure, in exactly the shape asked for,
in layouts the adapters read back (recsys/data/synthetic_structured.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.adapters import HALF_STARS, STARS, read_dataset
from recsys.data.synthetic import write_archive
from recsys.data.synthetic_structured import ML_100K, Shape, csv_members, generate, ml1m_members, scaled


@pytest.fixture(scope="module")
def data():
    return generate(ML_100K, seed=1)


@pytest.fixture(scope="module")
def ratings(data) -> pd.DataFrame:
    return pd.DataFrame({"user": data.user, "movie": data.movie, "rating": data.ratings_on(STARS)})


def test_exact_shape_distinct_pairs_and_a_floor_per_user(data, ratings):
    assert len(ratings) == ML_100K.ratings
    assert not ratings.duplicated(["user", "movie"]).any()
    per_user = ratings.groupby("user").size()
    assert len(per_user) == ML_100K.users and per_user.min() >= 20
    assert per_user.max() > 5 * per_user.median()  # long-tailed, as ML-100K's (20 .. 737, median 65)
    assert set(np.unique(ratings.rating)) == {1, 2, 3, 4, 5}
    assert 3.3 < ratings.rating.mean() < 3.8 and 1.0 < ratings.rating.std() < 1.25  # ML-100K: 3.53, 1.13


def test_popularity_is_long_tailed(ratings):
    per_movie = ratings.groupby("movie").size().sort_values(ascending=False)
    top_tenth = per_movie.iloc[: ML_100K.movies // 10].sum() / len(ratings)
    assert top_tenth > 0.35  # ML-100K: 0.43; uniform choice would give 0.10


def test_means_recover_the_true_biases(data, ratings):
    """Model-free: a movie's (user's) mean rating tracks the bias that made its ratings."""
    movies = ratings.groupby("movie").rating.agg(["mean", "count"])
    movies = movies[movies["count"] >= 20]
    assert np.corrcoef(movies["mean"], data.movie_bias[movies.index])[0, 1] > 0.8
    users = ratings.groupby("user").rating.mean()
    assert np.corrcoef(users, data.user_bias[users.index])[0, 1] > 0.8


def test_side_features_carry_signal(data, ratings):
    """Genres explain much of the movie factors, demographics of the user tastes; and, model-free,
    (demographic x genre) cell means of one half of the ratings predict the other half's residuals
    after user and movie means (ML-100K, the same check: r = 0.04 gender .. 0.08 occupation)."""
    assert _explained(data.genres, data.factors) > 0.3
    demographics = np.hstack(
        [np.eye(2)[(data.gender == "M").astype(int)], np.eye(7)[data.age_group], np.eye(21)[data.occupation]]
    )
    assert _explained(demographics, data.taste) > 0.2

    residual = (
        ratings.rating
        - ratings.groupby("user").rating.transform("mean")
        - ratings.groupby("movie").rating.transform("mean")
        + ratings.rating.mean()
    ).to_numpy()
    genres = data.genres[ratings.movie].astype(float)
    fit = np.random.default_rng(0).random(len(ratings)) < 0.5
    for code in (data.age_group, data.occupation):
        group = code[ratings.user]
        sums, counts = np.zeros((group.max() + 1, genres.shape[1])), np.zeros((group.max() + 1, genres.shape[1]))
        np.add.at(sums, group[fit], genres[fit] * residual[fit, None])
        np.add.at(counts, group[fit], genres[fit])
        cell = sums / np.maximum(counts, 1)
        predicted = (genres[~fit] * cell[group[~fit]]).sum(axis=1) / genres[~fit].sum(axis=1)
        assert np.corrcoef(predicted, residual[~fit])[0, 1] > 0.03  # 0.05-0.09 over seeds; 0 without signal


def _explained(x: np.ndarray, y: np.ndarray) -> float:
    """Share of ``y``'s variance a least-squares fit on ``x`` (plus an intercept) explains."""
    design = np.column_stack([np.ones(len(x)), x])
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return 1 - residual.var(axis=0).sum() / y.var(axis=0).sum()


def test_scaled_shapes_keep_ratings_per_user():
    assert scaled(1) == ML_100K
    assert scaled(100) == Shape(9430, 16820, 1_000_000) and scaled(100).pairs == 158_612_600
    assert scaled(10).pairs == pytest.approx(10 * ML_100K.pairs, rel=1e-3)


@pytest.mark.parametrize(
    ("render", "dataset", "folder", "scale"),
    [(ml1m_members, "ml-1m", "ml-1m", STARS), (csv_members, "ml-csv", "ml-synthetic", HALF_STARS)],
)
def test_the_adapters_read_the_rendered_layouts(tmp_path, render, dataset, folder, scale):
    small = generate(Shape(60, 90, 1500), seed=2)
    path = write_archive(tmp_path / "synthetic.zip", render(small), folder=folder)
    ml = read_dataset(path, dataset, "", max_member_bytes=1 << 24)
    assert (len(ml.users), len(ml.movies), len(ml.ratings)) == (60, 90, 1500)
    expected = pd.DataFrame({"user_id": small.user + 1, "movie_id": small.movie + 1, "r": small.ratings_on(scale)})
    merged = ml.ratings.merge(expected, on=["user_id", "movie_id"], validate="one_to_one")
    assert len(merged) == 1500 and (merged.rating == merged.r).all()
    assert ml.movies.release_year.notna().all()
    if dataset == "ml-1m":
        assert set(ml.users.gender) == {"M", "F"}
