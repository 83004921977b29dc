"""The TFRS ranking model: two towers, a pair scorer, ``tfrs.tasks.Ranking`` (MSE, RMSE).

rating = global mean + user bias + movie bias + <user_dot, movie_dot> + MLP(user ++ movie)

The first MLP layer over the concatenated towers is split into a user half and a movie
half (``W [u; m] = W_u u + W_m m``, mathematically the same layer), so everything up to
that sum is per-user or per-movie. ``user_parts``/``movie_parts`` return those halves
plus the dot vectors and biases; ``score_parts`` does the per-pair remainder. The
precompute job calls the towers once per user and once per movie and only
``score_parts`` per pair (the SavedModel exposes the same three functions).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.model.config import ModelConfig
from recsys.model.towers import Lookup, Tower, _l2, bag_levels
from recsys.model.vocab import Bags, Vocabulary

keras = tf.keras


class RankingModel(tfrs.Model):
    """Rating regression over (user, movie) pairs; inputs are raw feature dicts."""

    def __init__(self, cfg: ModelConfig, vocab: Vocabulary, bags: Bags | None):
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab  # which features (and so which raw inputs) the model has
        self.user_tower = Tower("user", cfg, vocab, bags)
        self.movie_tower = Tower("movie", cfg, vocab, bags)
        first = cfg.hidden_layers[0] if cfg.hidden_layers else 0
        reg = _l2(cfg.l2_dense)
        self.user_hidden = keras.layers.Dense(first, use_bias=False, kernel_regularizer=reg) if first else None
        self.movie_hidden = keras.layers.Dense(first, use_bias=True, kernel_regularizer=reg) if first else None
        self.mlp = [keras.layers.Dense(w, activation="relu", kernel_regularizer=reg) for w in cfg.hidden_layers[1:]]
        self.mlp_out = keras.layers.Dense(1, kernel_regularizer=reg) if first else None
        self.dropout = keras.layers.Dropout(cfg.dropout, seed=cfg.seed) if cfg.dropout > 0 else None
        self.user_dot = keras.layers.Dense(cfg.dot_dim, use_bias=False, kernel_regularizer=reg) if cfg.dot_dim else None
        self.movie_dot = (
            keras.layers.Dense(cfg.dot_dim, use_bias=False, kernel_regularizer=reg) if cfg.dot_dim else None
        )
        if cfg.use_biases:
            self.user_bias = keras.layers.Embedding(
                len(vocab.user_ids) + 2, 1, embeddings_initializer="zeros", embeddings_regularizer=_l2(cfg.l2_embedding)
            )
            self.movie_bias = keras.layers.Embedding(
                len(vocab.movie_ids) + 2,
                1,
                embeddings_initializer="zeros",
                embeddings_regularizer=_l2(cfg.l2_embedding),
            )
            self.global_bias = tf.Variable(vocab.global_mean, dtype=tf.float32, name="global_mean")
        self.levels = bag_levels(cfg, vocab)
        self.scale = vocab.scale  # the served rating is clipped to it
        self.global_mean = vocab.global_mean  # centre of the rating-weighted bags (a constant)
        self.task = tfrs.tasks.Ranking(
            loss=keras.losses.MeanSquaredError(),
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        )

    # ------------------------------------------------------------------ per side

    def _indices(self, features, training: bool):
        """Vocabulary indices of the pair's ids: (as looked up, as the model sees them)."""
        user_index = self.user_tower.index(features)
        movie_index = self.movie_tower.index(features)
        seen_user, seen_movie = user_index, movie_index
        if training and self.cfg.id_dropout > 0:
            # Hide some ids (and with them bias and history) so the side-feature-only
            # path that cold-start users and movies take is trained too.
            keep_u = tf.random.uniform(tf.shape(user_index)) >= self.cfg.id_dropout
            keep_m = tf.random.uniform(tf.shape(movie_index)) >= self.cfg.id_dropout
            seen_user = tf.where(keep_u, user_index, tf.zeros_like(user_index))
            seen_movie = tf.where(keep_m, movie_index, tf.zeros_like(movie_index))
        return (user_index, movie_index), (seen_user, seen_movie)

    def user_parts(self, features, user_index=None, target=None, training=False):
        """Per-user half: first-layer contribution, dot vector and bias (no movie needed)."""
        if user_index is None:
            user_index = self.user_tower.index(features)
        vector = self.user_tower(features, user_index, target, training=training)
        return self._side_parts(vector, user_index, self.user_hidden, self.user_dot, "user", training)

    def movie_parts(self, features, movie_index=None, target=None, training=False):
        """Per-movie half: first-layer contribution (with its bias), dot vector and bias."""
        if movie_index is None:
            movie_index = self.movie_tower.index(features)
        vector = self.movie_tower(features, movie_index, target, training=training)
        return self._side_parts(vector, movie_index, self.movie_hidden, self.movie_dot, "movie", training)

    def _side_parts(self, vector, index, hidden_layer, dot_layer, side: str, training: bool):
        if self.dropout is not None:
            vector = self.dropout(vector, training=training)
        batch = tf.shape(index)[0]
        hidden = hidden_layer(vector) if hidden_layer is not None else tf.zeros([batch, 0])
        dot = dot_layer(vector) if dot_layer is not None else tf.zeros([batch, 0])
        if self.cfg.use_biases:
            table = self.user_bias if side == "user" else self.movie_bias
            bias = tf.squeeze(table(index), -1) * tf.cast(index > 0, tf.float32)
        else:
            bias = tf.zeros([batch])
        return {"hidden": hidden, "dot": dot, "bias": bias}

    # ------------------------------------------------------------------ per pair

    def global_term(self) -> tf.Tensor:
        return self.global_bias if self.cfg.use_biases else tf.constant(0.0)

    def interaction(self, user: dict[str, tf.Tensor], movie: dict[str, tf.Tensor], training=False):
        """The pair-dependent terms: dot product + MLP over both towers, shape [batch]."""
        score = tf.zeros_like(user["bias"] + movie["bias"])
        if self.cfg.dot_dim:
            score += tf.reduce_sum(user["dot"] * movie["dot"], axis=-1)
        if self.mlp_out is not None:
            x = tf.nn.relu(user["hidden"] + movie["hidden"])
            for layer in self.mlp:
                if self.dropout is not None:
                    x = self.dropout(x, training=training)
                x = layer(x)
            score += tf.squeeze(self.mlp_out(x), -1)
        return score

    def score_parts(self, user: dict[str, tf.Tensor], movie: dict[str, tf.Tensor], training=False):
        """The per-pair remainder: raw (unclipped) predicted rating, shape [batch]."""
        return self.global_term() + user["bias"] + movie["bias"] + self.interaction(user, movie, training)

    def call(self, features, training=False):
        (user_index, movie_index), (seen_user, seen_movie) = self._indices(features, training)
        user_target = movie_target = None
        if "mask_rating" in features:  # training/validation pairs that sit inside the bags
            marked = tf.cast(features["mask_rating"], tf.int64)  # rating level + 1; 0: not in the bags
            level = tf.maximum(marked - 1, 0) if self.levels > 1 else tf.zeros_like(marked)
            inside = (marked > 0) & (user_index > 0) & (movie_index > 0)
            rating = self.scale.low + tf.cast(marked - 1, tf.float32) * self.scale.step
            weight = rating - self.global_mean
            # The target pair leaves both bags: the movie from the user's, the user from the
            # movie's. A hidden id has an empty bag (row 0), so there is nothing to remove.
            user_target = {
                "mask": tf.cast(inside & (seen_user > 0), tf.float32),
                "key": movie_index * self.levels + level,
                "item": movie_index,
                "weight": weight,
                "pos": tf.cast(features["bag_pos_user"], tf.int64),
            }
            movie_target = {
                "mask": tf.cast(inside & (seen_movie > 0), tf.float32),
                "key": user_index * self.levels + level,
                "item": user_index,
                "weight": weight,
                "pos": tf.cast(features["bag_pos_movie"], tf.int64),
            }
        user = self.user_parts(features, seen_user, user_target, training)
        movie = self.movie_parts(features, seen_movie, movie_target, training)
        return self.score_parts(user, movie, training)

    def compute_loss(self, features, training=False):
        predictions = self(features, training=training)
        return self.task(labels=tf.cast(features["rating"], tf.float32), predictions=predictions)

    def finish(self, raw: tf.Tensor) -> tf.Tensor:
        """Served rating: raw score clipped to the rating scale (if configured)."""
        low, high = self.scale.low, self.scale.high
        return tf.clip_by_value(raw, low, high) if self.cfg.clip_predictions else raw


__all__ = ["Lookup", "RankingModel"]
