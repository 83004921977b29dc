"""The serving functions, shared by in-memory prediction and the exported SavedModel.

One ``tf.Module`` holds the trained model and four ``tf.function``s with fixed input
signatures. Evaluation calls these very functions in memory and the export saves them,
so the reloaded artifact computes exactly what was evaluated.

Signatures (all inputs batched on the first axis). Every score function returns two
outputs: ``rating``, the predicted rating (1-5), and ``score``, what orders the published
list (the list head's score; the rating itself for a model without a list head):
- ``serving_default``: raw pair features (named inputs, one per raw column of
  ``features.FEATURES`` the model has) -> ``rating``, ``score`` [B]
- ``user_tower``: raw user features -> ``hidden`` [B,H], ``dot`` [B,D], ``bias`` [B], ``query`` [B,Q]
- ``movie_tower``: raw movie features -> ``hidden``, ``dot``, ``bias``, ``candidate`` [B,Q],
  ``candidate_bias`` [B]
- ``score_pairs``: user_* and movie_* parts -> ``rating``, ``score`` [B]; either side may
  have batch size 1 and is broadcast against the other (one user against all movies).
- ``score_grid``: user_* parts of U users and movie_* parts of M movies -> ``rating``,
  ``score`` [U, M], every user against every movie (what the precompute job calls).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from recsys.model.ensemble import Ensemble
from recsys.model.inputs import as_input

PREDICT_CHUNK = 65_536
GRID_USERS = 32  # users per score_grid call; 8 to 128 score about as fast (docs/ARCHITECTURE.md, Precompute speed)
USER_PARTS = ("hidden", "dot", "bias", "query")
MOVIE_PARTS = ("hidden", "dot", "bias", "candidate", "candidate_bias")


def _specs(inputs: dict[str, tf.DType]) -> dict[str, tf.TensorSpec]:
    """A named input signature: the SavedModel signature takes these as keyword inputs."""
    return {name: tf.TensorSpec([None], dtype, name=name) for name, dtype in inputs.items()}


class ServingModule(tf.Module):
    """The model plus its serving functions; what ``tf.saved_model.save`` exports.

    ``model`` predicts ratings; ``heads`` (the list heads, ``retrieval.py``) give the
    ranking score. Without heads the ranking score is the predicted rating. Several heads
    average their scores, which is one dot product of their parts concatenated (the query
    divided by the number of heads, the candidate biases averaged).

    Every function takes one dict of named inputs (the tower functions: the raw columns of
    the model's features, ``Vocabulary.inputs``), so its signature follows the feature
    spec; ``signature(name)`` calls one with keywords, as a loaded SavedModel's is called.
    """

    def __init__(self, model: Ensemble, heads: list | None = None):
        super().__init__(name="ranker")
        self.model = model
        self.heads = list(heads or [])
        # Part widths: each ensemble member contributes its own slice.
        hidden = model.hidden_dim * len(model.members)
        dot = model.dot_dim * len(model.members)
        query = sum(h.cfg.retrieval_dim for h in self.heads)
        self.hidden_dim, self.dot_dim, self.query_dim = hidden, dot, query
        widths = {"hidden": [hidden], "dot": [dot], "bias": [], "query": [query], "candidate": [query],
                  "candidate_bias": []}  # fmt: skip
        part_specs = {
            f"{side}_{part}": tf.TensorSpec([None, *widths[part]], tf.float32, name=f"{side}_{part}")
            for side, parts in (("user", USER_PARTS), ("movie", MOVIE_PARTS))
            for part in parts
        }
        user_inputs, movie_inputs = model.vocab.inputs("user"), model.vocab.inputs("movie")

        def serve(features):
            return self._score(self._user_parts(features), self._movie_parts(features), self.model.score_parts)

        def score_pairs(parts):
            user, movie = _split_parts(parts)
            return self._score(user, movie, self.model.score_parts)

        def score_grid(parts):
            user, movie = _split_parts(parts)
            user = {k: tf.expand_dims(v, 1) for k, v in user.items()}
            movie = {k: tf.expand_dims(v, 0) for k, v in movie.items()}
            return self._score(user, movie, self.model.score_parts)

        self.serving_default = tf.function(serve, input_signature=[_specs(user_inputs | movie_inputs)])
        self.user_tower = tf.function(self._user_parts, input_signature=[_specs(user_inputs)])
        self.movie_tower = tf.function(self._movie_parts, input_signature=[_specs(movie_inputs)])
        self.score_pairs = tf.function(score_pairs, input_signature=[part_specs])
        self.score_grid = tf.function(score_grid, input_signature=[part_specs])

    def signature(self, name: str):
        """Serving function ``name`` called with keyword inputs, like ``LoadedModel.signature``."""
        fn = getattr(self, name)
        return lambda **inputs: fn(inputs)

    def _user_parts(self, features) -> dict[str, tf.Tensor]:
        parts = self.model.user_parts(features)
        queries = [h.query(features) for h in self.heads]
        batch = tf.shape(parts["bias"])[0]
        parts["query"] = tf.concat(queries, -1) / len(self.heads) if queries else tf.zeros([batch, 0])
        return parts

    def _movie_parts(self, features) -> dict[str, tf.Tensor]:
        parts = self.model.movie_parts(features)
        heads = [h.candidate(features) for h in self.heads]
        batch = tf.shape(parts["bias"])[0]
        parts["candidate"] = tf.concat([c for c, _ in heads], -1) if heads else tf.zeros([batch, 0])
        parts["candidate_bias"] = tf.add_n([b for _, b in heads]) / len(heads) if heads else tf.zeros([batch])
        return parts

    def _score(self, user, movie, score_parts) -> dict[str, tf.Tensor]:
        """``rating`` (clipped predicted rating) and ``score`` (what orders the list)."""
        rating = self.model.finish(score_parts(user, movie))
        if not self.heads:
            return {"rating": rating, "score": rating}
        score = tf.reduce_sum(user["query"] * movie["candidate"], axis=-1) + movie["candidate_bias"]
        return {"rating": rating, "score": score}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        return {
            "serving_default": self.serving_default.get_concrete_function(),
            "user_tower": self.user_tower.get_concrete_function(),
            "movie_tower": self.movie_tower.get_concrete_function(),
            "score_pairs": self.score_pairs.get_concrete_function(),
            "score_grid": self.score_grid.get_concrete_function(),
        }


def _split_parts(args: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """The score functions' ``user_*`` and ``movie_*`` inputs as the user's and the movie's parts."""
    return {k: args[f"user_{k}"] for k in USER_PARTS}, {k: args[f"movie_{k}"] for k in MOVIE_PARTS}


def tower_parts(fn, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A tower signature over a frame of raw inputs (``inputs.user_table``/``movie_table`` rows)."""
    feeds = {c: tf.constant(as_input(frame[c].to_numpy(), c)) for c in frame.columns}
    return {k: v.numpy() for k, v in fn(**feeds).items()}


def grid(score_grid, user_parts: dict[str, np.ndarray], movie_parts: dict, block: int = GRID_USERS) -> dict:
    """``rating`` and ``score`` [users, movies] from tower parts, ``block`` users per call.

    The one function that orders a list: the precompute job, the evaluation and the
    benchmarks all call it, so the published rank is the evaluated one.
    """
    movies = {f"movie_{k}": v for k, v in movie_parts.items()}
    n_users = len(user_parts["bias"])
    n_movies = len(next(iter(movie_parts.values())))
    out = {k: np.empty((n_users, n_movies), np.float32) for k in ("rating", "score")}
    for start in range(0, n_users, block):
        users = {f"user_{k}": v[start : start + block] for k, v in user_parts.items()}
        result = score_grid(**users, **movies)
        for k in out:
            out[k][start : start + block] = result[k].numpy()
    return out


def call_in_chunks(fn, features: dict[str, np.ndarray], key: str = "rating") -> np.ndarray:
    """Run a pair signature over numpy columns in chunks (bounded memory for 1.6M pairs)."""
    return outputs_in_chunks(fn, features, (key,))[key]


def outputs_in_chunks(fn, features: dict[str, np.ndarray], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Like ``call_in_chunks``, but every output in ``keys`` from one call of ``fn`` per chunk."""
    n = len(next(iter(features.values())))
    out: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for start in range(0, n, PREDICT_CHUNK):
        chunk = {k: tf.constant(v[start : start + PREDICT_CHUNK]) for k, v in features.items()}
        result = fn(**chunk)
        for key in keys:
            out[key].append(result[key].numpy())
    return {key: np.concatenate(parts) if parts else np.zeros(0, np.float32) for key, parts in out.items()}
