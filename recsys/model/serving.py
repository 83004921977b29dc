"""The serving functions, shared by in-memory prediction and the exported SavedModel.

One ``tf.Module`` holds the trained model and four ``tf.function``s with fixed input
signatures. Evaluation calls these very functions in memory and the export saves them,
so the reloaded artifact computes exactly what was evaluated.

Signatures (all inputs batched on the first axis):
- ``serving_default``: raw pair features -> ``rating`` [B]
- ``user_tower``: raw user features -> ``hidden`` [B,H], ``dot`` [B,D], ``bias`` [B]
- ``movie_tower``: raw movie features -> ``hidden`` [B,H], ``dot`` [B,D], ``bias`` [B]
- ``score_pairs``: user_* and movie_* parts -> ``rating`` [B]; either side may have batch
  size 1 and is broadcast against the other (one user against all movies).
- ``score_grid``: user_* parts of U users and movie_* parts of M movies -> ``rating`` [U, M],
  every user against every movie (what the precompute job calls; artifacts exported
  before it existed lack it, and the job falls back to ``score_pairs``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from recsys.model.ensemble import Ensemble  # noqa: E402
from recsys.model.inputs import MOVIE_INPUTS, PAIR_INPUTS, USER_INPUTS  # noqa: E402
from recsys.model.ranking import PART_NAMES  # noqa: E402

PREDICT_CHUNK = 65_536


def _specs(inputs: dict[str, tf.DType]) -> list[tf.TensorSpec]:
    return [tf.TensorSpec([None], dtype, name=name) for name, dtype in inputs.items()]


class ServingModule(tf.Module):
    """The model plus its serving functions; what ``tf.saved_model.save`` exports."""

    def __init__(self, model: Ensemble):
        super().__init__(name="ranker")
        self.model = model
        # Part widths: each ensemble member contributes its own slice.
        hidden = model.hidden_dim * len(model.members)
        dot = model.dot_dim * len(model.members)
        self.hidden_dim, self.dot_dim = hidden, dot
        part_specs = [
            tf.TensorSpec([None, hidden], tf.float32, name="user_hidden"),
            tf.TensorSpec([None, dot], tf.float32, name="user_dot"),
            tf.TensorSpec([None], tf.float32, name="user_bias"),
            tf.TensorSpec([None, hidden], tf.float32, name="movie_hidden"),
            tf.TensorSpec([None, dot], tf.float32, name="movie_dot"),
            tf.TensorSpec([None], tf.float32, name="movie_bias"),
        ]

        def serve(user_id, gender, occupation, age, zip_code, movie_id, title, genres, release_year):
            features = dict(zip(PAIR_INPUTS, (user_id, gender, occupation, age, zip_code,
                                              movie_id, title, genres, release_year), strict=True))  # fmt: skip
            return {"rating": self.model.finish(self.model(features, training=False))}

        def user_tower(user_id, gender, occupation, age, zip_code):
            features = dict(zip(USER_INPUTS, (user_id, gender, occupation, age, zip_code), strict=True))
            return self.model.user_parts(features)

        def movie_tower(movie_id, title, genres, release_year):
            features = dict(zip(MOVIE_INPUTS, (movie_id, title, genres, release_year), strict=True))
            return self.model.movie_parts(features)

        def score_pairs(user_hidden, user_dot, user_bias, movie_hidden, movie_dot, movie_bias):
            user = dict(zip(PART_NAMES, (user_hidden, user_dot, user_bias), strict=True))
            movie = dict(zip(PART_NAMES, (movie_hidden, movie_dot, movie_bias), strict=True))
            return {"rating": self.model.finish(self.model.score_parts(user, movie))}

        def score_grid(user_hidden, user_dot, user_bias, movie_hidden, movie_dot, movie_bias):
            user = dict(zip(PART_NAMES, (user_hidden, user_dot, user_bias), strict=True))
            movie = dict(zip(PART_NAMES, (movie_hidden, movie_dot, movie_bias), strict=True))
            return {"rating": self.model.finish(self.model.score_grid(user, movie))}

        self.serving_default = tf.function(serve, input_signature=_specs(PAIR_INPUTS))
        self.user_tower = tf.function(user_tower, input_signature=_specs(USER_INPUTS))
        self.movie_tower = tf.function(movie_tower, input_signature=_specs(MOVIE_INPUTS))
        self.score_pairs = tf.function(score_pairs, input_signature=part_specs)
        self.score_grid = tf.function(score_grid, input_signature=part_specs)

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        return {
            "serving_default": self.serving_default.get_concrete_function(),
            "user_tower": self.user_tower.get_concrete_function(),
            "movie_tower": self.movie_tower.get_concrete_function(),
            "score_pairs": self.score_pairs.get_concrete_function(),
            "score_grid": self.score_grid.get_concrete_function(),
        }


def call_in_chunks(fn, features: dict[str, np.ndarray], key: str = "rating") -> np.ndarray:
    """Run a pair signature over numpy columns in chunks (bounded memory for 1.6M pairs)."""
    n = len(next(iter(features.values())))
    out = []
    for start in range(0, n, PREDICT_CHUNK):
        chunk = {k: tf.constant(v[start : start + PREDICT_CHUNK]) for k, v in features.items()}
        out.append(fn(**chunk)[key].numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)
