"""The two towers: raw user (or movie) features in, one vector per user (or movie) out.

Each tower embeds every feature of its side in ``features.FEATURES`` after a vocabulary
lookup (index 0 = unknown, whose embedding is forced to zero, so an unknown id or value
simply contributes nothing) and concatenates the embeddings with a bag of the tower's
rating history. Towers depend on one side only, which is what lets the precompute job run
them once per user and once per movie instead of once per pair.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from recsys.model.config import ModelConfig
from recsys.model.features import Feature, Side, enabled, id_feature
from recsys.model.vocab import Bags, Vocabulary

keras = tf.keras


def _l2(value: float):
    return keras.regularizers.l2(value) if value > 0 else None


def _masked(embedded: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Zero the embedding of index 0 (unknown), so unknown values never add noise."""
    return embedded * tf.cast(index > 0, embedded.dtype)[..., tf.newaxis]


class Lookup(keras.layers.Layer):
    """Vocabulary lookup + embedding of one categorical feature (string or integer)."""

    def __init__(self, vocabulary: list, dim: int, l2: float, name: str, integer: bool = False):
        super().__init__(name=name)
        if integer:  # an empty integer vocabulary still needs one entry (IntegerLookup refuses none)
            values = [int(v) for v in vocabulary] or [0]
            self.lookup = keras.layers.IntegerLookup(vocabulary=values, mask_token=None, num_oov_indices=1)
        else:
            values = [str(v) for v in vocabulary]
            self.lookup = keras.layers.StringLookup(vocabulary=values or ["[NONE]"], mask_token=None, num_oov_indices=1)
        self.embedding = keras.layers.Embedding(
            len(values) + 2, dim, embeddings_regularizer=_l2(l2), name=f"{name}_embedding"
        )

    def index(self, values: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.lookup(values), tf.int64)

    def embed(self, index: tf.Tensor) -> tf.Tensor:
        return _masked(self.embedding(index), index)

    def call(self, values: tf.Tensor) -> tf.Tensor:
        return self.embed(self.index(values))

    def read(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """The embedding of this layer's feature, from the raw input columns."""
        return self(self.feature.values(features[self.feature.column]))


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


def feature_lookup(feature: Feature, vocab: Vocabulary, dim: int, l2: float, prefix: str = "") -> Lookup:
    """The lookup layer of ``feature`` (a ``BagLookup`` for a list-valued one), named after it."""
    layer = (BagLookup if feature.bag else Lookup)(
        vocab.values[feature.name], dim, l2, prefix + feature.name, integer=feature.dtype == tf.int64
    )
    layer.feature = feature  # a plain attribute (not trackable): what ``read`` reads
    return layer


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


# Each side's history bags: (name of the plain bag, of the rating-weighted bag).
_BAG_NAMES: dict[Side, tuple[str, str]] = {
    "user": ("rated_movies", "movie_ratings"),
    "movie": ("rated_by_users", "user_ratings"),
}


class Tower(keras.layers.Layer):
    """One side's features (``features.FEATURES``) + its history bags -> one vector per row.

    The tower embeds every feature of its side the model has (the vocabulary holds those
    the data set has; the config switches side features and the title variant), in
    ``FEATURES`` order, then the bags. That order is also the order in which the layers
    first run and so draw their initial weights: a fixed seed gives the same model.
    """

    def __init__(self, side: Side, cfg: ModelConfig, vocab: Vocabulary, bags: Bags | None):
        super().__init__(name=f"{side}_tower")
        self.side = side
        dims = {"id": cfg.id_dim, "side": cfg.side_dim}
        self.lookups = [
            feature_lookup(f, vocab, dims[f.size], cfg.l2_embedding) for f in enabled(vocab.features(side), cfg)
        ]
        self.id = self.lookups[0]  # ``enabled`` keeps the id, first
        self.bag = self.rated = None
        if not (getattr(cfg, f"use_{side}_bag") and bags is not None):
            return
        other = "movie" if side == "user" else "user"
        rows, items = len(vocab.values[self.id.feature.name]) + 1, len(vocab.values[id_feature(other).name]) + 1
        plain, weighted = _BAG_NAMES[side]
        self.bag = HistoryBag(
            getattr(bags, f"{side}_bag"), rows, getattr(bags, f"{side}_bag_keys"), cfg.bag_dim,
            cfg.bag_norm, cfg.l2_embedding, plain, dropout=cfg.bag_dropout,
        )  # fmt: skip
        if cfg.bag_centered:
            self.rated = HistoryBag(
                getattr(bags, f"{side}_rated"), rows, items, cfg.bag_dim, cfg.bag_norm, cfg.l2_embedding,
                weighted, weights=getattr(bags, f"{side}_rated_weights"), dropout=cfg.bag_dropout,
            )  # fmt: skip

    def index(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Vocabulary index of each row's id (0 = unknown)."""
        return self.id.index(features[self.id.feature.column])

    def call(self, features, index, target=None, training=False):
        parts = [self.id.embed(index)] + [lookup.read(features) for lookup in self.lookups[1:]]
        if self.bag is not None:
            parts.append(self.bag(index, target, training=training))
        if self.rated is not None:
            parts.append(self.rated(index, target, item_key=True, training=training))
        return tf.concat(parts, axis=-1)


def bag_levels(cfg: ModelConfig, vocab: Vocabulary) -> int:
    """Bag keys per item: one per rating level of the data set's scale when keyed by rating."""
    return vocab.scale.levels if cfg.bag_ratings else 1
