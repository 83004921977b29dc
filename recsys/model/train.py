"""Train the ranking model on a split, reproducibly, with early stopping on validation.

Validation is a slice of the split's *training* part (``validation_slice``: on a time-ordered split
the newest share, as ``tuning.validation_part`` draws it; otherwise a seeded random share): early stopping
and any hyperparameter choice look only at it, never at the test part. The history bags
hold every training rating (as at serving time); training and validation pairs are
masked out of their own bags, so each is scored the way an unseen test pair is.
Inputs are checked before any work: an invalid config, an empty or tiny split, or ids
without side features raise a ``RecsysError`` and nothing is trained or written.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import tensorflow as tf

from recsys.data.movielens import MovieLens
from recsys.data.splits import Split
from recsys.errors import ConfigError, DataError
from recsys.model import inputs
from recsys.model.config import ModelConfig
from recsys.model.ensemble import Ensemble
from recsys.model.ranking import RankingModel
from recsys.model.retrieval import RetrievalModel, catalogue_positions
from recsys.model.serving import ServingModule, call_in_chunks, grid, tower_parts
from recsys.model.tuning import is_temporal, validation_part
from recsys.model.vocab import Vocabulary, bag_targets, build_bags, build_vocabulary

log = logging.getLogger(__name__)

MIN_TRAIN_RATINGS = 100  # below this a split is a mistake, not a data set
MIN_USERS = MIN_MOVIES = 2


@dataclass
class TrainedModel:
    """A trained model with everything needed to predict, export and register it."""

    module: ServingModule
    config: ModelConfig
    vocab: Vocabulary
    users: pd.DataFrame  # raw user inputs from the feature store, by user id
    movies: pd.DataFrame
    split: str
    data_fingerprint: str
    history: dict[str, list[float]]  # of the first member; member_epochs for all
    best_epoch: int
    member_epochs: list[int]
    train_seconds: float
    retrieval_epochs: list[int] = field(default_factory=list)  # best epoch of each list head
    validation: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> Ensemble:
        return self.module.model

    def features(self, pairs: pd.DataFrame) -> dict[str, np.ndarray]:
        return inputs.pair_features(pairs, self.users, self.movies)

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """Served ratings for (user_id, movie_id) pairs, through the exported signature."""
        return call_in_chunks(self.module.signature("serving_default"), self.features(pairs))

    def score_grid(self, user_ids: np.ndarray, movie_ids: np.ndarray, key: str = "score") -> np.ndarray:
        """Ranking scores (or ``key="rating"``) of users x movies through the tower signatures."""
        users = tower_parts(self.module.signature("user_tower"), self.users.loc[user_ids])
        movies = tower_parts(self.module.signature("movie_tower"), self.movies.loc[movie_ids])
        return grid(self.module.signature("score_grid"), users, movies)[key]


def configure_tensorflow(seed: int, threads: int | None = None) -> None:
    """Seeds for Python, NumPy and TF; thread pools sized to the machine (set once per process)."""
    tf.keras.utils.set_random_seed(seed)
    threads = threads or os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        pass  # the runtime is already initialised (second model in one process): keep its pools


def check_inputs(ml: MovieLens, split: Split, cfg: ModelConfig) -> None:
    """Refuse, with a clear message, what would train a meaningless model or crash later."""
    if not isinstance(cfg, ModelConfig):
        raise ConfigError(f"expected a ModelConfig, got {type(cfg).__name__}")
    train = split.train
    if len(train) < MIN_TRAIN_RATINGS:
        raise DataError(
            f"split {split.name!r} has {len(train)} training ratings; at least {MIN_TRAIN_RATINGS} are needed"
        )
    if train["user_id"].nunique() < MIN_USERS or train["movie_id"].nunique() < MIN_MOVIES:
        raise DataError(f"split {split.name!r}: training needs at least {MIN_USERS} users and movies")
    bad = train[~train["rating"].map(ml.scale.allows)]
    if not bad.empty:
        raise DataError(f"split {split.name!r}: ratings must be {ml.scale}, found {bad['rating'].iloc[0]}")
    inputs.require_known_ids(train, ml, f"split {split.name!r} training part")
    if not split.test.empty:
        inputs.require_known_ids(split.test, ml, f"split {split.name!r} test part")
    if cfg.validation_fraction > 0 and int(len(train) * cfg.validation_fraction) < 1:
        raise DataError(f"split {split.name!r} is too small for a validation slice of {cfg.validation_fraction}")


def validation_slice(split: Split, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(fit, valid)`` of the training part: the newest share on a time-ordered split, else a seeded random one.

    The time-ordered slice is ``tuning.validation_part``'s, the baselines' tuning slice. The
    random slice holds the same ratings as ``validation_part``'s but keeps the fit part in
    the drawn order, which the measured figures in docs/MODEL.md were trained on.
    """
    if fraction <= 0:
        return split.train.reset_index(drop=True), split.train.iloc[:0]
    if is_temporal(split.name):
        return validation_part(split.train, fraction, seed, temporal=True)
    order = np.random.default_rng(seed).permutation(len(split.train))
    cut = int(len(split.train) * fraction)
    return split.train.iloc[order[cut:]].reset_index(drop=True), split.train.iloc[order[:cut]].reset_index(drop=True)


def train(
    ml: MovieLens,
    split: Split,
    cfg: ModelConfig,
    *,
    verbose: int = 2,
    threads: int | None = None,
    fixed_epochs: tuple[list[int], list[int]] | None = None,
) -> TrainedModel:
    """Fit ``cfg`` on ``split.train``; returns the model with its validation metrics.

    ``fixed_epochs`` (rating members' epochs, list heads' epochs) trains each model for
    exactly that many epochs on all of ``split.train``, with no validation slice.
    """
    if fixed_epochs is not None:
        cfg = cfg.replace(validation_fraction=0.0, early_stopping_patience=0)
    check_inputs(ml, split, cfg)
    configure_tensorflow(cfg.seed, threads)
    started = time.perf_counter()
    users, movies = inputs.user_table(ml), inputs.movie_table(ml)
    fit_part, valid_part = validation_slice(split, cfg.validation_fraction, cfg.seed)
    vocab = build_vocabulary(split.train, users, movies, ml.scale)
    needs_bags = cfg.use_user_bag or cfg.use_movie_bag or cfg.retrieval_dim > 0
    bags = build_bags(split.train, vocab, cfg.bag_ratings) if needs_bags else None

    def dataset(part: pd.DataFrame, shuffle: bool, seed: int = cfg.seed) -> tf.data.Dataset:
        cols = inputs.pair_features(part, users, movies)
        cols["rating"] = part["rating"].to_numpy(np.float32)
        if bags is not None:
            cols.update(bag_targets(part, bags, vocab.scale))
        ds = tf.data.Dataset.from_tensor_slices(cols)
        if shuffle:
            ds = ds.shuffle(len(part), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(cfg.batch_size).prefetch(2)

    train_ds = dataset(fit_part, shuffle=True)
    valid_ds = dataset(valid_part, shuffle=False) if len(valid_part) else None
    log.info(
        "training %s on %s: %d fit + %d validation ratings, %d model(s)",
        cfg.name, split.name, len(fit_part), len(valid_part), cfg.ensemble_size,
    )  # fmt: skip
    members, histories = [], []
    for k in range(cfg.ensemble_size):
        member_cfg = cfg if k == 0 else cfg.replace(seed=cfg.seed + k)
        if fixed_epochs is not None:
            member_cfg = member_cfg.replace(epochs=fixed_epochs[0][k])
        if cfg.ensemble_size > 1:
            log.info("ensemble member %d/%d (seed %d)", k + 1, cfg.ensemble_size, member_cfg.seed)
        if k:
            tf.keras.utils.set_random_seed(member_cfg.seed)
            train_ds = dataset(fit_part, shuffle=True, seed=member_cfg.seed)
        model, history = _fit_one(member_cfg, vocab, bags, train_ds, valid_ds, verbose)
        members.append(model)
        histories.append(history)
    best_epochs = [_best_epoch(h, cfg) for h in histories]
    heads, head_epochs = [], []
    for k in range(cfg.retrieval_members if cfg.retrieval_dim else 0):
        head_cfg = cfg.replace(seed=cfg.seed + k)
        if fixed_epochs is not None:
            head_cfg = head_cfg.replace(retrieval_epochs=fixed_epochs[1][k])
        head, epochs = _fit_retrieval(head_cfg, vocab, bags, users, movies, fit_part, valid_part, verbose)
        heads.append(head)
        head_epochs.append(epochs)
    trained = TrainedModel(
        module=ServingModule(Ensemble(members), heads),
        config=cfg,
        vocab=vocab,
        users=users,
        movies=movies,
        split=split.name,
        data_fingerprint=ml.fingerprint,
        history=histories[0],
        best_epoch=best_epochs[0],
        member_epochs=best_epochs,
        train_seconds=0.0,
        retrieval_epochs=head_epochs,
    )
    if len(valid_part):
        predicted = _validation_predictions(trained, valid_part, bags)
        trained.validation = {
            "rmse": float(np.sqrt(np.mean((predicted - valid_part["rating"].to_numpy()) ** 2))),
            "mae": float(np.mean(np.abs(predicted - valid_part["rating"].to_numpy()))),
            "ratings": int(len(valid_part)),
        }
    trained.train_seconds = time.perf_counter() - started
    log.info("trained in %.1fs, best epochs %s, validation %s", trained.train_seconds, best_epochs, trained.validation)
    return trained


def refit_all(ml: MovieLens, holdout: TrainedModel, *, verbose: int = 2) -> TrainedModel:
    """The holdout model's config trained again on every rating, each model for the epochs its holdout twin chose."""
    everything = Split("all", ml.ratings[["user_id", "movie_id", "rating", "rated_at"]], ml.ratings.iloc[:0])
    epochs = (holdout.member_epochs, holdout.retrieval_epochs)
    return train(ml, everything, holdout.config, verbose=verbose, fixed_epochs=epochs)


def _fit_one(cfg: ModelConfig, vocab, bags, train_ds, valid_ds, verbose: int):
    """One model, early-stopped on the validation slice (best weights restored)."""
    model = RankingModel(cfg, vocab, bags)
    optimizer = (
        tf.keras.optimizers.Adam(cfg.learning_rate)
        if cfg.optimizer == "adam"
        else tf.keras.optimizers.Adagrad(cfg.learning_rate)
    )
    model.compile(optimizer=optimizer)
    callbacks = []
    if cfg.early_stopping_patience > 0 and valid_ds is not None:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor="val_rmse", mode="min", patience=cfg.early_stopping_patience, restore_best_weights=True
            )
        )
    fitted = model.fit(train_ds, validation_data=valid_ds, epochs=cfg.epochs, callbacks=callbacks, verbose=verbose)
    return model, {k: [float(x) for x in v] for k, v in fitted.history.items()}


def _fit_retrieval(cfg: ModelConfig, vocab, bags, users, movies, fit_part, valid_part, verbose: int):
    """One list head, early-stopped on the validation slice's positives (best weights restored).

    While it learns, the head's history bag and the movies it leaves out of the softmax
    hold the fit part only: the validation ratings stay unseen, exactly like the test part
    and like the unseen movies of the published list. (With them inside, they were the only
    unseen-looking movies the softmax never pushed down, so validation hit rate kept
    rising while the test list got worse.) Afterwards the bag takes every training rating,
    as the rating model's bags do.
    """
    tf.keras.utils.set_random_seed(cfg.seed)
    fit_bags = build_bags(fit_part, vocab, by_rating=False) if len(valid_part) else bags
    model = RetrievalModel(cfg, vocab, fit_bags, movies)

    def dataset(part: pd.DataFrame, shuffle: bool) -> tf.data.Dataset:
        part = part[part["rating"] >= cfg.retrieval_min_rating]
        cols = inputs.pair_features(part, users, movies)
        cols.update(bag_targets(part, fit_bags, vocab.scale))
        cols["catalogue_pos"] = catalogue_positions(part, movies)
        ds = tf.data.Dataset.from_tensor_slices(cols)
        if shuffle:
            ds = ds.shuffle(len(part), seed=cfg.seed, reshuffle_each_iteration=True)
        return ds.batch(cfg.batch_size).prefetch(2)

    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate))
    valid = dataset(valid_part, False) if len(valid_part) else None
    callbacks = []
    if valid is not None and cfg.early_stopping_patience > 0:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor="val_hit@10", mode="max", patience=cfg.early_stopping_patience, restore_best_weights=True
            )
        )
    positives = int((fit_part["rating"] >= cfg.retrieval_min_rating).sum())
    log.info("list head (seed %d): %d positive ratings", cfg.seed, positives)
    fitted = model.fit(dataset(fit_part, True), validation_data=valid, epochs=cfg.retrieval_epochs,
                       callbacks=callbacks, verbose=verbose)  # fmt: skip
    model.bag.replace(bags.user_rated)
    history = fitted.history
    log.info("list head (seed %d): validation hit@10 by epoch %s", cfg.seed,
             [round(v, 4) for v in history.get("val_hit@10", [])])  # fmt: skip
    best = int(np.argmax(history["val_hit@10"])) + 1 if "val_hit@10" in history and callbacks else len(history["loss"])
    return model, best


def _best_epoch(history: dict[str, list[float]], cfg: ModelConfig) -> int:
    if "val_rmse" in history and cfg.early_stopping_patience > 0:
        return int(np.argmin(history["val_rmse"])) + 1
    return len(history.get("rmse", [])) or cfg.epochs


def _validation_predictions(trained: TrainedModel, part: pd.DataFrame, bags) -> np.ndarray:
    """Served (clipped) ratings for validation pairs, each masked out of its own bags."""
    cols = trained.features(part)
    if bags is not None:
        cols.update(bag_targets(part, bags, trained.vocab.scale))
    model = trained.model
    out = []
    for start in range(0, len(part), 65_536):
        chunk = {k: tf.constant(v[start : start + 65_536]) for k, v in cols.items()}
        out.append(model.finish(model(chunk, training=False)).numpy())
    return np.concatenate(out)
