"""What the model knows from its training data: vocabularies and rating-history bags.

Everything here is built from the *training* part of a split (ids, title tokens, years,
who-rated-what; closed sets such as genders and genres from every row of the feature
store, which holds no ratings), so nothing from the test part leaks into the model. Which
vocabularies exist and where each comes from is ``features.FEATURES``. Ids that
are not in a vocabulary map to index 0, the out-of-vocabulary slot that the model
treats as "unknown" (zero embedding, zero bias, empty bag): the cold-start path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf

from recsys.data.adapters import STARS, RatingScale
from recsys.model.features import MISSING, SIDES, Feature, Side, id_feature, of_side, raw_columns


@dataclass(frozen=True)
class Vocabulary:
    """Each feature's values (index i+1 in the model; 0 = unknown), for the features the tables hold."""

    values: dict[str, list]
    global_mean: float
    scale: RatingScale = STARS  # the data set's ratings: bags keyed by (item, rating) have one key per level

    @property
    def user_ids(self) -> list[str]:
        return self.values[id_feature("user").name]

    @property
    def movie_ids(self) -> list[str]:
        return self.values[id_feature("movie").name]

    def features(self, side: Side) -> tuple[Feature, ...]:
        """The side's features this model has, in ``FEATURES`` order."""
        return tuple(f for f in of_side(side) if f.name in self.values)

    def inputs(self, side: Side) -> dict[str, tf.DType]:
        """The side's raw inputs: what its tower (and serving signature) takes."""
        return raw_columns(self.features(side))


@dataclass(frozen=True)
class Bags:
    """Sparse who-rated-what matrices, in model indices, from the training ratings.

    ``user_bag`` rows are user indices, its keys movie indices (or movie x rating level);
    ``movie_bag`` rows are movie indices, its keys user indices (or user x rating level).
    """

    user_bag: np.ndarray  # int64 [nnz, 2]: (user index, key), sorted row-major
    user_bag_keys: int
    movie_bag: np.ndarray
    movie_bag_keys: int
    rated: pd.DataFrame  # user_id, movie_id, rating of every bag entry (for masking in training)
    # Plain (item-keyed) pairs with the rating minus the global mean as weight, for the
    # explicit-feedback bags: sum_j (r_uj - mean) * y_j says *how* the user rated, not only what.
    user_rated: np.ndarray  # int64 [nnz, 2]
    user_rated_weights: np.ndarray  # float32 [nnz]
    movie_rated: np.ndarray
    movie_rated_weights: np.ndarray


def build_vocabulary(
    train: pd.DataFrame, users: pd.DataFrame, movies: pd.DataFrame, scale: RatingScale = STARS
) -> Vocabulary:
    """``users``/``movies`` are the raw input tables (``inputs.user_table``/``movie_table``)."""
    values: dict[str, list] = {}
    for side, table in zip(SIDES, (users, movies), strict=True):
        key = id_feature(side).column
        seen = table.loc[np.unique(train[key].astype("int64"))]  # rows in training, ascending id
        for feature in of_side(side, table.columns):
            values[feature.name] = feature_vocabulary(feature, seen if feature.vocabulary == "train" else table)
    return Vocabulary(values=values, global_mean=float(train["rating"].mean()), scale=scale)


def feature_vocabulary(feature: Feature, rows: pd.DataFrame) -> list:
    """The distinct values ``feature`` takes on ``rows``, derived exactly as the model derives them."""
    if isinstance(feature.vocabulary, tuple):
        return list(feature.vocabulary)
    derived = feature.values(tf.constant(rows[feature.column].to_numpy(), feature.dtype))
    if isinstance(derived, tf.RaggedTensor):
        derived = derived.flat_values
    found = [v.decode() if isinstance(v, bytes) else int(v) for v in derived.numpy().tolist()]
    missing = MISSING[feature.dtype]
    if feature.size == "id":  # in table order: the history bags and the list head index by it
        return [v for v in dict.fromkeys(found) if v != missing]
    return sorted(set(found) - {missing})


def build_bags(train: pd.DataFrame, vocab: Vocabulary, by_rating: bool) -> Bags:
    """Who rated what in ``train``, as sparse index pairs the model multiplies embeddings with."""
    user_index = {int(u): i + 1 for i, u in enumerate(vocab.user_ids)}
    movie_index = {int(m): i + 1 for i, m in enumerate(vocab.movie_ids)}
    u = train["user_id"].astype("int64").map(user_index).to_numpy(np.int64)
    m = train["movie_id"].astype("int64").map(movie_index).to_numpy(np.int64)
    level = rating_levels(train["rating"], vocab.scale) if by_rating else np.zeros(len(train), np.int64)
    levels = vocab.scale.levels if by_rating else 1
    centered = train["rating"].to_numpy(np.float32) - np.float32(vocab.global_mean)
    user_order, movie_order = np.lexsort((m, u)), np.lexsort((u, m))
    return Bags(
        user_bag=_sorted_pairs(u, m * levels + level),
        user_bag_keys=(len(vocab.movie_ids) + 1) * levels,
        movie_bag=_sorted_pairs(m, u * levels + level),
        movie_bag_keys=(len(vocab.user_ids) + 1) * levels,
        rated=train[["user_id", "movie_id", "rating"]].reset_index(drop=True),
        user_rated=np.stack([u[user_order], m[user_order]], axis=1),
        user_rated_weights=centered[user_order],
        movie_rated=np.stack([m[movie_order], u[movie_order]], axis=1),
        movie_rated_weights=centered[movie_order],
    )


def bag_targets(pairs: pd.DataFrame, bags: Bags, scale: RatingScale = STARS) -> dict[str, np.ndarray]:
    """Per pair: where it sits in the bags, so training can take it out of its own bags.

    ``mask_rating`` is the pair's rating level + 1 if it is inside the bags, else 0 (on whole
    stars 1-5 that is the rating itself; the model turns it back with ``scale``);
    ``bag_pos_user``/``bag_pos_movie`` its entry in the user-/movie-sorted bag arrays.
    """
    rated = bags.rated.astype({"user_id": "int64", "movie_id": "int64"})
    by_user = np.lexsort((rated["movie_id"].to_numpy(), rated["user_id"].to_numpy()))
    by_movie = np.lexsort((rated["user_id"].to_numpy(), rated["movie_id"].to_numpy()))
    pos_user = np.empty(len(rated), np.int64)
    pos_user[by_user] = np.arange(len(rated))
    pos_movie = np.empty(len(rated), np.int64)
    pos_movie[by_movie] = np.arange(len(rated))
    rated = rated.assign(bag_pos_user=pos_user, bag_pos_movie=pos_movie)
    keyed = pairs[["user_id", "movie_id"]].astype("int64").merge(rated, on=["user_id", "movie_id"], how="left")
    return {
        "mask_rating": np.where(
            keyed["rating"].isna(), 0, rating_levels(keyed["rating"].fillna(scale.low), scale) + 1
        ).astype(np.int64),
        "bag_pos_user": keyed["bag_pos_user"].fillna(0).astype("int64").to_numpy(),
        "bag_pos_movie": keyed["bag_pos_movie"].fillna(0).astype("int64").to_numpy(),
    }


def rating_levels(ratings: pd.Series, scale: RatingScale) -> np.ndarray:
    """Each rating's level on ``scale``, 0 .. levels-1 (whole stars 1-5: the rating - 1)."""
    return np.rint((ratings.to_numpy(np.float64) - scale.low) / scale.step).astype(np.int64)


def _sorted_pairs(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    order = np.lexsort((cols, rows))
    return np.stack([rows[order], cols[order]], axis=1).astype(np.int64)
