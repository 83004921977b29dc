"""Reference definitions, in pandas, of what the model derives (docs/FEATURES.md).

The model's features are declared in ``recsys.model.features`` (``FEATURES``), which also
derives them inside the exported model with TensorFlow. These are their pandas twins,
written independently, which a test checks the in-model derivations against, plus the
constants both share. Aggregates (means, counts) are computed from the *training*
ratings only, so no test rating leaks into a feature.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# MovieLens 1M's age groups, applied to 100K's exact ages: coarse enough that every
# bucket has hundreds of users, fine enough to separate students from retirees.
AGE_BOUNDARIES: tuple[int, ...] = (18, 25, 35, 45, 50, 56)
ZIP_PREFIX_LEN = 3  # US sectional center: a region, not a street
UNKNOWN = "[UNK]"


def age_bucket(age: pd.Series) -> pd.Series:
    """Index of the age group: 0 = under 18, ..., 6 = 56 and over."""
    return pd.Series(np.searchsorted(AGE_BOUNDARIES, age.to_numpy(), side="right"), index=age.index)


def zip_prefix(zip_code: pd.Series) -> pd.Series:
    """First three characters; Canadian postcodes (letters) keep their own prefixes."""
    return zip_code.fillna("").str.strip().str.upper().str[:ZIP_PREFIX_LEN].replace("", UNKNOWN)


def decade(year: pd.Series) -> pd.Series:
    return (year // 10 * 10).astype("Int64")


def title_tokens(title: str) -> list[str]:
    """Lower-cased word tokens of a title; the year, e.g. '1995', is a token too."""
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).split()


def user_features(users: pd.DataFrame) -> pd.DataFrame:
    """One row per user: the raw side columns with the derived age bucket and zip prefix."""
    return pd.DataFrame(
        {
            "user_id": users["user_id"].astype(str),
            "gender": users["gender"].astype(str),
            "occupation": users["occupation"].astype(str),
            "age": users["age"].astype("int64"),
            "age_bucket": age_bucket(users["age"]).astype("int64"),
            "zip_prefix": zip_prefix(users["zip_code"]),
        }
    )


def movie_features(movies: pd.DataFrame) -> pd.DataFrame:
    """One row per movie with its decade; a missing year (movie 267) becomes 0, which the model treats as unknown."""
    year = movies["release_year"].astype("Int64")
    return pd.DataFrame(
        {
            "movie_id": movies["movie_id"].astype(str),
            "title": movies["title"].astype(str),
            "genres": movies["genres"].map(list),
            "release_year": year.fillna(0).astype("int64"),
            "decade": decade(year).fillna(0).astype("int64"),
        }
    )


def training_statistics(train: pd.DataFrame) -> dict[str, pd.DataFrame | float]:
    """Aggregates from training ratings only: global mean, per-user and per-movie mean/count."""
    by_user = train.groupby("user_id")["rating"].agg(user_mean="mean", user_count="count")
    by_movie = train.groupby("movie_id")["rating"].agg(movie_mean="mean", movie_count="count")
    return {
        "global_mean": float(train["rating"].mean()),
        "users": by_user.reset_index(),
        "movies": by_movie.reset_index(),
    }
