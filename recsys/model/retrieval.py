"""The list head: which unseen movies belong at the top of a user's list.

A rating model predicts how much a user would like a movie *if* they watched it; the
published list needs which movies they will watch and like. This model is trained for
that: for every training rating >= ``retrieval_min_rating`` it predicts the movie from the
rest of the user's history, with a softmax over the whole catalogue (1,682 movies: the
exact softmax costs one [batch, movies] matmul, so no sampled negatives and no sampling
bias to correct).

query(user)      = W_q [user id ; bag of the user's rated movies (target removed) ; side features]
candidate(movie) = W_c [movie id ; title words ; genres ; year ; decade],  plus a per-movie bias
(the features with ``list_head`` set in ``features.FEATURES``; the whole-title lookup of
``title_mode: whole`` is not one, being as id-like as the id)
score            = <query, candidate> + bias

Like SVD++'s implicit term, the bag is what carries the signal: the target pair leaves
the bag (leave-one-out), and bag entries are dropped at random during training
(denoising), so a pair is scored the way an unseen movie is at serving time. Each side
depends on one side only, so the precompute job still runs the towers once per user and
once per movie and only a dot product per pair.

A new movie (no training rating) has no id embedding and no bias, so it can reach a list
only through its features. Two things make the head train that path: movies without a
training rating are left out of the softmax (as negatives only, they would just teach the
head to push down whatever such movies look like), and ``retrieval_id_dropout`` hides the
id and the bias of a random share of the catalogue each step, so the features, the title
words above all, learn to stand in for the id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.model import inputs
from recsys.model.config import ModelConfig
from recsys.model.features import Side, enabled
from recsys.model.towers import HistoryBag, Lookup, _l2, feature_lookup
from recsys.model.vocab import Bags, Vocabulary

keras = tf.keras
RETRIEVAL_PARTS = ("query", "candidate", "candidate_bias")


class RetrievalModel(tfrs.Model):
    """Full-catalogue softmax over movies, for the users' positive ratings."""

    def __init__(self, cfg: ModelConfig, vocab: Vocabulary, bags: Bags, catalogue: pd.DataFrame):
        super().__init__()
        self.cfg = cfg
        dim, l2 = cfg.retrieval_dim, cfg.retrieval_l2
        dims = {"id": dim, "side": cfg.side_dim}

        def lookups(side: Side) -> list[Lookup]:
            wanted = enabled(vocab.features(side), cfg, list_head=True)
            return [feature_lookup(f, vocab, dims[f.size], l2, prefix="r_") for f in wanted]

        self.user_lookups, self.movie_lookups = lookups("user"), lookups("movie")
        self.user_id, self.movie_id = self.user_lookups[0], self.movie_lookups[0]
        self.bag = HistoryBag(
            bags.user_rated, len(vocab.user_ids) + 1, len(vocab.movie_ids) + 1, dim, "sqrt", l2,
            "r_rated_movies", dropout=cfg.retrieval_bag_dropout,
        )  # fmt: skip
        self.query_layer = keras.layers.Dense(dim, use_bias=False, kernel_regularizer=_l2(cfg.retrieval_l2))
        self.candidate_layer = keras.layers.Dense(dim, use_bias=False, kernel_regularizer=_l2(cfg.retrieval_l2))
        self.movie_bias = keras.layers.Embedding(len(vocab.movie_ids) + 2, 1, embeddings_initializer="zeros")
        # The softmax runs over the whole catalogue (the feature store's movies, known or not).
        self.catalogue = {
            name: tf.constant(inputs.as_input(catalogue[name].to_numpy(), name)) for name in vocab.inputs("movie")
        }
        self.seen = tf.constant(seen_matrix(vocab, bags, catalogue))
        # Movies without a training rating are never a target: they leave the softmax (see the module doc).
        self.unrated = tf.constant(self.movie_id.index(self.catalogue[self.movie_id.feature.column]).numpy() == 0)
        # hit@10: is the held-out movie in the top 10 of the user's unseen movies; what early
        # stopping watches on the validation slice (the softmax loss bottoms out epochs earlier).
        self.task = tfrs.tasks.Ranking(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=10, name="hit@10")],
        )

    def query(self, features, user_index=None, target=None, training=False) -> tf.Tensor:
        if user_index is None:
            user_index = self.user_id.index(features[self.user_id.feature.column])
        parts = [self.user_id.embed(user_index), self.bag(user_index, target, item_key=True, training=training)]
        parts += [lookup.read(features) for lookup in self.user_lookups[1:]]
        return self.query_layer(tf.concat(parts, axis=-1))

    def candidate(self, features, hide: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """(candidate vector, bias) per movie; an unknown movie is scored from its features.

        ``hide`` (training): bool per movie, whose id embedding and bias are dropped, as for a new movie.
        """
        index = self.movie_id.index(features[self.movie_id.feature.column])
        if hide is not None:
            index = tf.where(hide, tf.zeros_like(index), index)
        parts = [self.movie_id.embed(index)] + [lookup.read(features) for lookup in self.movie_lookups[1:]]
        bias = tf.squeeze(self.movie_bias(index), -1) * tf.cast(index > 0, tf.float32)
        return self.candidate_layer(tf.concat(parts, axis=-1)), bias

    def parts(self, user_features, movie_features) -> dict[str, tf.Tensor]:
        candidate, bias = self.candidate(movie_features)
        return {"query": self.query(user_features), "candidate": candidate, "candidate_bias": bias}

    def compute_loss(self, features, training=False):
        user_index = self.user_id.index(features[self.user_id.feature.column])
        movie_index = self.movie_id.index(features[self.movie_id.feature.column])
        target = {  # the target pair leaves the user's bag (see HistoryBag)
            "mask": tf.cast((features["mask_rating"] > 0) & (user_index > 0) & (movie_index > 0), tf.float32),
            "item": movie_index,
            "weight": tf.ones_like(tf.cast(user_index, tf.float32)),
            "pos": tf.cast(features["bag_pos_user"], tf.int64),
            "key": movie_index,
        }
        query = self.query(features, user_index, target, training=training)
        hide = None
        if training and self.cfg.retrieval_id_dropout > 0:
            hide = tf.random.uniform(tf.shape(self.unrated)) < self.cfg.retrieval_id_dropout
        candidates, bias = self.candidate(self.catalogue, hide)
        logits = tf.matmul(query, candidates, transpose_b=True) + bias[tf.newaxis, :]
        # The user's other training movies are no competition for the target: the published
        # list ranks only unseen movies, so the softmax does too. Nor are movies without a
        # training rating (never a target; see the module doc).
        target = tf.cast(tf.one_hot(features["catalogue_pos"], tf.shape(logits)[1]), tf.bool)
        others = (tf.gather(self.seen, user_index) | self.unrated[tf.newaxis, :]) & ~target
        logits = tf.where(others, tf.constant(-1e9, logits.dtype), logits)
        return self.task(labels=features["catalogue_pos"], predictions=logits)


def seen_matrix(vocab: Vocabulary, bags: Bags, catalogue: pd.DataFrame) -> np.ndarray:
    """bool [user index, catalogue row]: which movies each known user rated in training."""
    user_index = pd.Series(np.arange(1, len(vocab.user_ids) + 1), index=np.asarray(vocab.user_ids).astype(np.int64))
    rows = user_index.loc[bags.rated["user_id"].astype("int64").to_numpy()].to_numpy()
    seen = np.zeros((len(vocab.user_ids) + 1, len(catalogue)), dtype=bool)
    seen[rows, catalogue_positions(bags.rated, catalogue)] = True
    return seen


def catalogue_positions(pairs: pd.DataFrame, catalogue: pd.DataFrame) -> np.ndarray:
    """Each pair's movie as its row in the catalogue the softmax runs over."""
    position = pd.Series(np.arange(len(catalogue)), index=catalogue.index)
    return position.loc[pairs["movie_id"].astype("int64").to_numpy()].to_numpy(np.int64)
