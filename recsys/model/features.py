"""Every feature the model reads, declared once: ``FEATURES`` (docs/FEATURES.md explains each).

One row per feature: its side, the raw column it comes from (a feature-store column and,
by the same name, a serving input), how the model derives its values from that column,
where its vocabulary comes from and which embedding width it gets. The input tables
(``inputs``), the vocabularies (``vocab``), the tower lookups (``towers``, ``retrieval``)
and the serving signatures (``serving``) are all generated from this table, so a new
categorical side feature is one row here plus its column in ingestion.

A data set without a column simply yields a model without the features read from it:
everything downstream iterates over the features the tables actually hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import tensorflow as tf

from recsys.data.features import AGE_BOUNDARIES, UNKNOWN, ZIP_PREFIX_LEN

Side = Literal["user", "movie"]
SIDES: tuple[Side, ...] = ("user", "movie")
LIST_SEP = "|"  # a list-valued column travels as one string, e.g. genres "Animation|Children's|Comedy"
MISSING: dict[tf.DType, Any] = {tf.string: "", tf.int64: 0}  # what the input tables hold for "not known"


# ---------------------------------------------------------------- derivations (inside the model)
# Pure functions of one row, so the exported model recomputes them from raw inputs and
# serving needs only what the feature store holds. ``recsys.data.features`` has their
# pandas twins, which a test checks these against; the vocabularies are built with these.


def age_bucket(age: tf.Tensor) -> tf.Tensor:
    """Same buckets as ``recsys.data.features.age_bucket`` (searchsorted, side='right')."""
    return tf.raw_ops.Bucketize(input=tf.cast(age, tf.int64), boundaries=[float(b) for b in AGE_BOUNDARIES])


def zip_prefix(zip_code: tf.Tensor) -> tf.Tensor:
    """Same as ``recsys.data.features.zip_prefix``: trimmed, upper-cased first three characters."""
    prefix = tf.strings.substr(tf.strings.upper(tf.strings.strip(zip_code)), 0, ZIP_PREFIX_LEN)
    return tf.where(prefix == "", tf.constant(UNKNOWN), prefix)


def decade(year: tf.Tensor) -> tf.Tensor:
    """Release decade; 0 stays 0 (unknown year)."""
    return tf.cast(year, tf.int64) // 10 * 10


def title_tokens(title: tf.Tensor) -> tf.RaggedTensor:
    """Lower-cased word tokens of a title (keeps the year, e.g. '1995', as a token)."""
    cleaned = tf.strings.regex_replace(tf.strings.lower(title), r"[^a-z0-9]+", " ")
    return tf.strings.split(tf.strings.strip(cleaned))


def split_genres(genres: tf.Tensor) -> tf.RaggedTensor:
    return tf.strings.split(genres, sep=LIST_SEP)


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Feature:
    """One feature: raw column -> (derive) -> vocabulary lookup -> embedding.

    ``vocabulary``: ``"train"`` = the values of the rows (users or movies) in the training
    part, ``"all"`` = of every row in the feature store (a closed set such as genders, where
    a value unseen in training is still a real value), or a fixed tuple. Values are sorted;
    an id feature's values keep the table's (ascending id) order, which the bags index by.
    ``MISSING`` values never enter a vocabulary: they look up as index 0, "unknown".
    ``size``: ``"id"`` embeds with ``cfg.id_dim`` (``retrieval_dim`` in the list head) and
    is the side's key (one per side, always present); ``"side"`` with ``cfg.side_dim`` and
    only with ``cfg.use_side_features``.
    ``bag``: ``derive`` gives a list per row, embedded as the mean of its values' embeddings.
    ``option``: the feature exists only when that config field has that value.
    """

    name: str  # also the name of its lookup layer (``r_<name>`` in the list head)
    side: Side
    column: str  # raw input: feature-store column and serving-signature input
    dtype: tf.DType  # of the raw column
    derive: Callable[[tf.Tensor], tf.Tensor | tf.RaggedTensor] | None = None
    vocabulary: Literal["train", "all"] | tuple = "train"
    size: Literal["id", "side"] = "side"
    bag: bool = False
    list_head: bool = True  # the list head (retrieval.py) reads it too
    option: tuple[str, Any] | None = None

    def values(self, raw: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
        """What gets looked up: the raw column, derived."""
        return self.derive(raw) if self.derive is not None else tf.cast(raw, self.dtype)


AGE_BUCKETS = tuple(range(len(AGE_BOUNDARIES) + 1))  # every bucket is a real value, even unseen

# fmt: off
FEATURES: tuple[Feature, ...] = (
    #       name            side     column          dtype      derive        options
    Feature("user_id",      "user",  "user_id",      tf.string, size="id"),
    Feature("gender",       "user",  "gender",       tf.string, vocabulary="all"),
    Feature("occupation",   "user",  "occupation",   tf.string, vocabulary="all"),
    Feature("age_bucket",   "user",  "age",          tf.int64,  age_bucket,   vocabulary=AGE_BUCKETS),
    Feature("zip_prefix",   "user",  "zip_code",     tf.string, zip_prefix),
    Feature("movie_id",     "movie", "movie_id",     tf.string, size="id"),
    Feature("title_tokens", "movie", "title",        tf.string, title_tokens, bag=True,
            option=("title_mode", "tokens")),
    Feature("title",        "movie", "title",        tf.string, list_head=False, option=("title_mode", "whole")),
    Feature("genres",       "movie", "genres",       tf.string, split_genres, bag=True, vocabulary="all"),
    Feature("release_year", "movie", "release_year", tf.int64),
    Feature("decade",       "movie", "release_year", tf.int64,  decade),
)
# fmt: on

for _side in SIDES:  # the towers take a side's first feature as its key: one id, listed first
    _ids = [f.size == "id" for f in FEATURES if f.side == _side]
    if not _ids or not _ids[0] or sum(_ids) != 1:
        raise ValueError(f"FEATURES must list exactly one id feature of the {_side} side, before its other features")


def of_side(side: Side, columns: Iterable[str] | None = None) -> tuple[Feature, ...]:
    """The side's features, in table order; with ``columns``, only those read from one of them."""
    keep = None if columns is None else set(columns)
    return tuple(f for f in FEATURES if f.side == side and (keep is None or f.column in keep))


def id_feature(side: Side) -> Feature:
    return next(f for f in FEATURES if f.side == side and f.size == "id")


def raw_columns(features: Iterable[Feature]) -> dict[str, tf.DType]:
    """The raw inputs ``features`` read, in table order: the serving signature's inputs."""
    out: dict[str, tf.DType] = {}
    for f in features:
        if out.setdefault(f.column, f.dtype) != f.dtype:
            raise TypeError(f"column {f.column!r} is declared as {out[f.column].name} and {f.dtype.name}")
    return out


def enabled(features: Iterable[Feature], cfg: Any, *, list_head: bool = False) -> tuple[Feature, ...]:
    """The features a model with ``cfg`` embeds: the id, and side features if switched on."""

    def wanted(f: Feature) -> bool:
        if f.size == "id":
            return True
        if not cfg.use_side_features or (list_head and not f.list_head):
            return False
        return f.option is None or getattr(cfg, f.option[0]) == f.option[1]

    return tuple(f for f in features if wanted(f))
