"""The two towers: raw user (or movie) features in, one vector per user (or movie) out.

Each tower embeds every feature after a vocabulary lookup (index 0 = unknown, whose
embedding is forced to zero, so an unknown id or value simply contributes nothing) and
concatenates the embeddings with a bag of the tower's rating history. Towers depend on
one side only, which is what lets the precompute job run them once per user and once per
movie instead of once per pair.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from recsys.model import inputs
from recsys.model.config import ModelConfig
from recsys.model.vocab import RATING_LEVELS, Bags, Vocabulary

keras = tf.keras


def _l2(value: float):
    return keras.regularizers.l2(value) if value > 0 else None


def _masked(embedded: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Zero the embedding of index 0 (unknown), so unknown values never add noise."""
    return embedded * tf.cast(index > 0, embedded.dtype)[..., tf.newaxis]


class Lookup(keras.layers.Layer):
    """Vocabulary lookup + embedding of one categorical feature (string or integer)."""

    def __init__(self, vocabulary: list, dim: int, l2: float, name: str):
        super().__init__(name=name)
        if vocabulary and isinstance(vocabulary[0], int | np.integer):
            self.lookup = keras.layers.IntegerLookup(
                vocabulary=[int(v) for v in vocabulary], mask_token=None, num_oov_indices=1
            )
        else:
            self.lookup = keras.layers.StringLookup(
                vocabulary=[str(v) for v in vocabulary] or ["[NONE]"], mask_token=None, num_oov_indices=1
            )
        self.embedding = keras.layers.Embedding(
            len(vocabulary) + 2, dim, embeddings_regularizer=_l2(l2), name=f"{name}_embedding"
        )

    def index(self, values: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.lookup(values), tf.int64)

    def embed(self, index: tf.Tensor) -> tf.Tensor:
        return _masked(self.embedding(index), index)

    def call(self, values: tf.Tensor) -> tf.Tensor:
        return self.embed(self.index(values))


class BagLookup(Lookup):
    """Mean embedding of a variable-length list of values (title tokens, genres)."""

    def call(self, values: tf.RaggedTensor) -> tf.Tensor:
        index = tf.ragged.map_flat_values(self.index, values)
        flat = self.embed(index.flat_values)
        rows = tf.cast(index.value_rowids(), tf.int32)
        count = tf.math.unsorted_segment_sum(
            tf.cast(index.flat_values > 0, flat.dtype), rows, index.nrows(out_type=tf.int32)
        )
        total = tf.math.unsorted_segment_sum(flat, rows, index.nrows(out_type=tf.int32))
        return total / tf.maximum(count, 1.0)[:, tf.newaxis]


class HistoryBag(keras.layers.Layer):
    """Normalised (weighted) sum of the embeddings of a row's rating history.

    Unweighted, it is SVD++'s implicit term (which movies a user rated); weighted by the
    centred rating it also says how they were rated. The sum for every row is one
    sparse x dense product per step (nnz x dim multiply-adds, about 2.5M for ML-100K),
    cheaper than gathering each example's history. During training ``mask`` removes the
    target pair itself from its bag (``mask_key`` with ``mask_weight``), so the model never
    sees the rating it has to predict and training looks like serving on unseen pairs.
    """

    def __init__(
        self,
        pairs: np.ndarray,
        num_rows: int,
        num_keys: int,
        dim: int,
        norm: str,
        l2: float,
        name: str,
        weights: np.ndarray | None = None,
        dropout: float = 0.0,
    ):
        super().__init__(name=name)
        self.norm = norm
        self.dropout = dropout
        self.num_rows, self.num_keys = num_rows, num_keys
        pairs = pairs.reshape(-1, 2).astype(np.int64)
        # Shapes left open on the entry axis, so ``replace`` can swap in another history.
        self.pairs = tf.Variable(pairs, trainable=False, dtype=tf.int64, shape=[None, 2], name=f"{name}_pairs")
        values = np.ones(len(pairs), np.float32) if weights is None else weights.astype(np.float32)
        self.values = tf.Variable(values, trainable=False, shape=[None], name=f"{name}_values")
        self.weighted = weights is not None
        counts = np.bincount(pairs[:, 0], minlength=num_rows).astype(np.float32)
        self.counts = tf.Variable(counts, trainable=False, name=f"{name}_counts")
        self.table = self.add_weight(
            name=f"{name}_table",
            shape=(num_keys, dim),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
            regularizer=_l2(l2),
        )

    def replace(self, pairs: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Swap in another history of the same rows and keys (e.g. every training rating after fitting)."""
        pairs = pairs.reshape(-1, 2).astype(np.int64)
        self.pairs.assign(pairs)
        self.values.assign(np.ones(len(pairs), np.float32) if weights is None else weights.astype(np.float32))
        self.counts.assign(np.bincount(pairs[:, 0], minlength=self.num_rows).astype(np.float32))

    def sums(self, values: tf.Tensor | None = None) -> tf.Tensor:
        values = self.values if values is None else values
        sparse = tf.SparseTensor(self.pairs, values, [self.num_rows, self.num_keys])
        return tf.sparse.sparse_dense_matmul(sparse, self.table)

    def call(self, row, target: dict | None = None, item_key: bool = False, training: bool = False) -> tf.Tensor:
        """Bag vectors of ``row``; ``target`` (training/validation) removes the pair itself.

        With ``dropout`` > 0, training hides a random share of all bag entries each step
        (denoising, as in autoencoder recommenders) and rescales the rest.
        """
        values, keep_scale = self.values, None
        if training and self.dropout > 0:
            keep_scale = tf.cast(tf.random.uniform(tf.shape(self.values)) >= self.dropout, tf.float32)
            keep_scale /= 1.0 - self.dropout
            values = values * keep_scale
        total = tf.gather(self.sums(values), row)
        count = tf.gather(self.counts, row)
        if target is not None:
            mask = target["mask"]
            weight = mask * target["weight"] if self.weighted else mask
            if keep_scale is not None:  # remove the target exactly as it went in (maybe dropped)
                weight *= tf.gather(keep_scale, target["pos"])
            key = target["item"] if item_key else target["key"]
            total -= weight[:, tf.newaxis] * tf.gather(self.table, key)
            count -= mask
        count = tf.maximum(count, 1.0)
        scale = tf.math.rsqrt(count) if self.norm == "sqrt" else 1.0 / count
        return total * scale[:, tf.newaxis]


class UserTower(keras.layers.Layer):
    """user_id, gender, occupation, age bucket, zip prefix (+ rated-movie bag) -> vector."""

    def __init__(self, cfg: ModelConfig, vocab: Vocabulary, bags: Bags | None):
        super().__init__(name="user_tower")
        self.cfg = cfg
        self.user_id = Lookup(vocab.user_ids, cfg.id_dim, cfg.l2_embedding, "user_id")
        if cfg.use_side_features:
            self.gender = Lookup(vocab.genders, cfg.side_dim, cfg.l2_embedding, "gender")
            self.occupation = Lookup(vocab.occupations, cfg.side_dim, cfg.l2_embedding, "occupation")
            self.age_bucket = Lookup(
                list(range(len(inputs.AGE_BOUNDARIES) + 1)), cfg.side_dim, cfg.l2_embedding, "age_bucket"
            )
            self.zip_prefix = Lookup(vocab.zip_prefixes, cfg.side_dim, cfg.l2_embedding, "zip_prefix")
        self.bag = None
        if cfg.use_user_bag and bags is not None:
            self.bag = HistoryBag(
                bags.user_bag, len(vocab.user_ids) + 1, bags.user_bag_keys, cfg.bag_dim,
                cfg.bag_norm, cfg.l2_embedding, "rated_movies", dropout=cfg.bag_dropout,
            )  # fmt: skip
        self.rated = None
        if cfg.bag_centered and cfg.use_user_bag and bags is not None:
            self.rated = HistoryBag(
                bags.user_rated, len(vocab.user_ids) + 1, len(vocab.movie_ids) + 1, cfg.bag_dim,
                cfg.bag_norm, cfg.l2_embedding, "movie_ratings", weights=bags.user_rated_weights, dropout=cfg.bag_dropout,
            )  # fmt: skip

    def call(self, features, user_index, target=None, training=False):
        parts = [self.user_id.embed(user_index)]
        if self.cfg.use_side_features:
            parts += [
                self.gender(features["gender"]),
                self.occupation(features["occupation"]),
                self.age_bucket(inputs.age_bucket(features["age"])),
                self.zip_prefix(inputs.zip_prefix(features["zip_code"])),
            ]
        if self.bag is not None:
            parts.append(self.bag(user_index, target, training=training))
        if self.rated is not None:
            parts.append(self.rated(user_index, target, item_key=True, training=training))
        return tf.concat(parts, axis=-1)


class MovieTower(keras.layers.Layer):
    """movie_id, title, genres, release year and decade (+ who-rated-it bag) -> vector."""

    def __init__(self, cfg: ModelConfig, vocab: Vocabulary, bags: Bags | None):
        super().__init__(name="movie_tower")
        self.cfg = cfg
        self.movie_id = Lookup(vocab.movie_ids, cfg.id_dim, cfg.l2_embedding, "movie_id")
        if cfg.use_side_features:
            if cfg.title_mode == "tokens":
                self.title = BagLookup(vocab.title_tokens, cfg.side_dim, cfg.l2_embedding, "title_tokens")
            else:
                self.title = Lookup(vocab.titles, cfg.side_dim, cfg.l2_embedding, "title")
            self.genres = BagLookup(vocab.genres, cfg.side_dim, cfg.l2_embedding, "genres")
            self.year = Lookup(vocab.years or [0], cfg.side_dim, cfg.l2_embedding, "release_year")
            self.decade = Lookup(vocab.decades or [0], cfg.side_dim, cfg.l2_embedding, "decade")
        self.bag = None
        if cfg.use_movie_bag and bags is not None:
            self.bag = HistoryBag(
                bags.movie_bag, len(vocab.movie_ids) + 1, bags.movie_bag_keys, cfg.bag_dim,
                cfg.bag_norm, cfg.l2_embedding, "rated_by_users", dropout=cfg.bag_dropout,
            )  # fmt: skip
        self.rated = None
        if cfg.bag_centered and cfg.use_movie_bag and bags is not None:
            self.rated = HistoryBag(
                bags.movie_rated, len(vocab.movie_ids) + 1, len(vocab.user_ids) + 1, cfg.bag_dim,
                cfg.bag_norm, cfg.l2_embedding, "user_ratings", weights=bags.movie_rated_weights, dropout=cfg.bag_dropout,
            )  # fmt: skip

    def call(self, features, movie_index, target=None, training=False):
        parts = [self.movie_id.embed(movie_index)]
        if self.cfg.use_side_features:
            title = features["title"]
            parts += [
                self.title(inputs.title_tokens(title)) if self.cfg.title_mode == "tokens" else self.title(title),
                self.genres(inputs.split_genres(features["genres"])),
                self.year(tf.cast(features["release_year"], tf.int64)),
                self.decade(inputs.decade(features["release_year"])),
            ]
        if self.bag is not None:
            parts.append(self.bag(movie_index, target, training=training))
        if self.rated is not None:
            parts.append(self.rated(movie_index, target, item_key=True, training=training))
        return tf.concat(parts, axis=-1)


def bag_levels(cfg: ModelConfig) -> int:
    return RATING_LEVELS if cfg.bag_ratings else 1
