"""Raw model inputs: the pandas side (join ratings to side features) and the TF side (derive).

The exported model takes *raw* features (ids and strings as stored in the feature store)
and derives age bucket, zip prefix, decade and title tokens itself, with the constants of
``recsys.data.features``. So the training pipeline and every serving caller feed the same
raw columns, and a derived feature cannot drift between training and serving.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from recsys.data.features import AGE_BOUNDARIES, UNKNOWN, ZIP_PREFIX_LEN
from recsys.data.movielens import MovieLens
from recsys.errors import DataError

GENRE_SEP = "|"

# Serving-signature inputs, in order, with their dtypes: everything as stored, ids as strings.
USER_INPUTS: dict[str, tf.DType] = {
    "user_id": tf.string,
    "gender": tf.string,
    "occupation": tf.string,
    "age": tf.int64,
    "zip_code": tf.string,
}
MOVIE_INPUTS: dict[str, tf.DType] = {
    "movie_id": tf.string,
    "title": tf.string,
    "genres": tf.string,  # genre names joined by "|", e.g. "Animation|Children's|Comedy"
    "release_year": tf.int64,  # 0 = unknown
}
PAIR_INPUTS: dict[str, tf.DType] = {**USER_INPUTS, **MOVIE_INPUTS}


def user_table(ml: MovieLens) -> pd.DataFrame:
    """One row of raw user inputs per user in the feature store, indexed by integer user id."""
    users = ml.users
    frame = pd.DataFrame(
        {
            "user_id": users["user_id"].astype(str).to_numpy(),
            "gender": users["gender"].fillna("").astype(str).to_numpy(),
            "occupation": users["occupation"].fillna("").astype(str).to_numpy(),
            "age": pd.to_numeric(users["age"], errors="coerce").fillna(0).astype("int64").to_numpy(),
            "zip_code": users["zip_code"].fillna("").astype(str).to_numpy(),
        },
        index=users["user_id"].astype("int64").to_numpy(),
    )
    return frame


def movie_table(ml: MovieLens) -> pd.DataFrame:
    """One row of raw movie inputs per movie in the feature store, indexed by integer movie id."""
    movies = ml.movies
    return pd.DataFrame(
        {
            "movie_id": movies["movie_id"].astype(str).to_numpy(),
            "title": movies["title"].fillna("").astype(str).to_numpy(),
            "genres": movies["genres"].map(lambda gs: GENRE_SEP.join(gs)).to_numpy(),
            "release_year": movies["release_year"].astype("Int64").fillna(0).astype("int64").to_numpy(),
        },
        index=movies["movie_id"].astype("int64").to_numpy(),
    )


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
    out: dict[str, np.ndarray] = {}
    for frame, spec in ((u, USER_INPUTS), (m, MOVIE_INPUTS)):
        for name, dtype in spec.items():
            column = frame[name].to_numpy()
            out[name] = column.astype(np.int64) if dtype == tf.int64 else column.astype(object)
    return out


# ---------------------------------------------------------------- TF side (inside the model)


def age_bucket(age: tf.Tensor) -> tf.Tensor:
    """Same buckets as ``recsys.data.features.age_bucket`` (searchsorted, side='right')."""
    return tf.raw_ops.Bucketize(input=tf.cast(age, tf.int64), boundaries=[float(b) for b in AGE_BOUNDARIES])


def zip_prefix(zip_code: tf.Tensor) -> tf.Tensor:
    """Same as ``recsys.data.features.zip_prefix``: trimmed, upper-cased first three characters."""
    prefix = tf.strings.substr(tf.strings.upper(tf.strings.strip(zip_code)), 0, ZIP_PREFIX_LEN)
    return tf.where(prefix == "", tf.constant(UNKNOWN), prefix)


def decade(year: tf.Tensor) -> tf.Tensor:
    """Release decade; 0 stays 0 (unknown year)."""
    year = tf.cast(year, tf.int64)
    return year // 10 * 10


def title_tokens(title: tf.Tensor) -> tf.RaggedTensor:
    """Lower-cased word tokens of a title (keeps the year, e.g. '1995', as a token)."""
    cleaned = tf.strings.regex_replace(tf.strings.lower(title), r"[^a-z0-9]+", " ")
    return tf.strings.split(tf.strings.strip(cleaned))


def python_title_tokens(title: str) -> list[str]:
    """The vocabulary builder's twin of ``title_tokens``."""
    import re

    return re.sub(r"[^a-z0-9]+", " ", title.lower()).split()


def split_genres(genres: tf.Tensor) -> tf.RaggedTensor:
    return tf.strings.split(genres, sep=GENRE_SEP)
