"""Average of several independently seeded ranking models, with the tower split intact.

Seeds disagree mostly on noise, so their mean is more accurate than any one of them
(the issue's prototype: single seeds 0.898-0.906 on u1, their average 0.895). The
ensemble keeps the per-user / per-movie / per-pair structure: its tower parts are the
members' parts concatenated (biases averaged), and ``score_parts`` slices them apart
again, so precompute cost grows linearly with the member count, not per pair.
A single model is simply an ensemble of one.
"""

from __future__ import annotations

import tensorflow as tf

from recsys.model.config import ModelConfig
from recsys.model.ranking import RankingModel
from recsys.model.vocab import Vocabulary


class Ensemble(tf.Module):
    """The mean rating of ``members`` (same config shape, different seeds)."""

    def __init__(self, members: list[RankingModel]):
        super().__init__(name="ensemble")
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.cfg: ModelConfig = members[0].cfg
        self.vocab: Vocabulary = members[0].vocab  # the members share the data, so the features
        self.hidden_dim = self.cfg.hidden_layers[0] if self.cfg.hidden_layers else 0
        self.dot_dim = self.cfg.dot_dim

    def __call__(self, features, training: bool = False) -> tf.Tensor:
        """Raw (unclipped) mean prediction for pair features."""
        return tf.add_n([m(features, training=training) for m in self.members]) / len(self.members)

    def finish(self, raw: tf.Tensor) -> tf.Tensor:
        return self.members[0].finish(raw)

    def user_parts(self, features) -> dict[str, tf.Tensor]:
        return self._concat([m.user_parts(features) for m in self.members])

    def movie_parts(self, features) -> dict[str, tf.Tensor]:
        return self._concat([m.movie_parts(features) for m in self.members])

    def _concat(self, parts: list[dict[str, tf.Tensor]]) -> dict[str, tf.Tensor]:
        return {
            "hidden": tf.concat([p["hidden"] for p in parts], axis=-1),
            "dot": tf.concat([p["dot"] for p in parts], axis=-1),
            "bias": tf.add_n([p["bias"] for p in parts]) / len(parts),
        }

    def score_parts(self, user: dict[str, tf.Tensor], movie: dict[str, tf.Tensor]) -> tf.Tensor:
        h, d, n = self.hidden_dim, self.dot_dim, len(self.members)
        interactions = []
        for k, member in enumerate(self.members):

            def piece(side: dict[str, tf.Tensor], k: int = k) -> dict[str, tf.Tensor]:
                return {
                    "hidden": side["hidden"][..., k * h : (k + 1) * h],
                    "dot": side["dot"][..., k * d : (k + 1) * d],
                    "bias": side["bias"],
                }

            interactions.append(member.interaction(piece(user), piece(movie)))
        global_term = tf.add_n([m.global_term() for m in self.members]) / n
        return global_term + user["bias"] + movie["bias"] + tf.add_n(interactions) / n
