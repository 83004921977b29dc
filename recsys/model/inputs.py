"""Raw model inputs as tables: one row per user (movie), one column per raw input of ``FEATURES``.

The exported model takes *raw* features (ids and strings as stored in the feature store)
and derives age bucket, zip prefix, decade and title tokens itself (``features.py``). So
the training pipeline and every serving caller feed the same raw columns, and a derived
feature cannot drift between training and serving. The tables hold the columns the
feature store has: a data set without a side column gives tables, and so a model,
without the features read from it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from recsys.data.movielens import MovieLens
from recsys.errors import DataError
from recsys.model.features import LIST_SEP, Side, id_feature, of_side, raw_columns

# Every raw input any feature reads, with its dtype: what the tables and signatures hold.
DTYPES: dict[str, tf.DType] = raw_columns(of_side("user")) | raw_columns(of_side("movie"))


def user_table(ml: MovieLens) -> pd.DataFrame:
    """One row of raw user inputs per user in the feature store, indexed by integer user id."""
    return side_table(ml.users, "user")


def movie_table(ml: MovieLens) -> pd.DataFrame:
    """One row of raw movie inputs per movie in the feature store, indexed by integer movie id."""
    return side_table(ml.movies, "movie")


def side_table(frame: pd.DataFrame, side: Side) -> pd.DataFrame:
    """The raw inputs of ``side`` that ``frame`` (``ml.users``/``ml.movies``) has columns for."""
    key = id_feature(side).column
    if key not in frame.columns:
        raise DataError(f"the {side}s have no {key!r} column")
    columns = raw_columns(of_side(side, frame.columns))
    return pd.DataFrame(
        {name: _column(frame[name], dtype) for name, dtype in columns.items()},
        index=frame[key].astype("int64").to_numpy(),
    )


def _column(values: pd.Series, dtype: tf.DType) -> np.ndarray:
    """A raw column as the model takes it; missing values become ``features.MISSING`` ("" or 0)."""
    if dtype == tf.int64:
        return pd.to_numeric(values, errors="coerce").fillna(0).astype("int64").to_numpy()
    # A list-valued column (a movie's genres) travels as one string, split again in the model.
    joined = values.map(lambda v: LIST_SEP.join(v) if isinstance(v, list | tuple | np.ndarray) else v)
    return joined.fillna("").astype(str).to_numpy()


def require_known_ids(pairs: pd.DataFrame, ml: MovieLens, what: str) -> None:
    """Every id must have side features; otherwise say which ids are missing."""
    for column, known in (("user_id", ml.users["user_id"]), ("movie_id", ml.movies["movie_id"])):
        missing = sorted(set(pairs[column].astype("int64")) - set(known.astype("int64")))
        if missing:
            raise DataError(
                f"{what}: {len(missing)} {column} value(s) are not in the feature store "
                f"(no side features), e.g. {missing[:5]}"
            )


def pair_features(pairs: pd.DataFrame, users: pd.DataFrame, movies: pd.DataFrame) -> dict[str, np.ndarray]:
    """Raw inputs for (user_id, movie_id) pairs, as numpy columns the serving signature takes."""
    u = users.loc[pairs["user_id"].astype("int64").to_numpy()]
    m = movies.loc[pairs["movie_id"].astype("int64").to_numpy()]
    return {name: as_input(frame[name].to_numpy(), name) for frame in (u, m) for name in frame.columns}


def as_input(values: np.ndarray, column: str) -> np.ndarray:
    """A column in the numpy dtype its signature input takes (int64, or object for strings)."""
    return values.astype(np.int64 if DTYPES[column] == tf.int64 else object)
