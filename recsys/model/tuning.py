"""Hyper-parameter choice on a validation share of the TRAINING part (never the test part).

A random split holds out a seeded random share of the training ratings; a time-ordered split holds out the newest training ratings,
so that validation, like the test, asks for later ratings than the model has seen. The
TFRS model's early stopping (``train.validation_slice``) draws its slice here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from recsys.errors import ConfigError

Params = dict[str, Any]


def is_temporal(split_name: str) -> bool:
    """Whether a split is time-ordered (``temporal``, ``temporal:0.2``, ...)."""
    return split_name.startswith("temporal")


def validation_part(
    train: pd.DataFrame, fraction: float = 0.1, seed: int = 42, temporal: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(fit, valid)``: ``fraction`` of the training ratings held out, in their original order.

    Random: a seeded random share. Temporal: the newest share by ``rated_at`` (ties by
    user_id, movie_id), so every validation rating is no older than every fit rating.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction must be between 0 and 1, got {fraction}")
    n_valid = int(round(len(train) * fraction)) if temporal else int(len(train) * fraction)
    if temporal:
        ordered = train.reset_index(drop=True).sort_values(["rated_at", "user_id", "movie_id"], kind="stable")
        held = ordered.index.to_numpy()[len(train) - n_valid :]
    else:
        held = np.random.default_rng(seed).permutation(len(train))[:n_valid]
    is_valid = np.zeros(len(train), dtype=bool)
    is_valid[held] = True
    return train[~is_valid].reset_index(drop=True), train[is_valid].reset_index(drop=True)


def choose(candidates: list[Params], evaluate: Callable[[Params], float]) -> tuple[Params, list[tuple[Params, float]]]:
    """The candidate with the highest validation score (first one on a tie; NaN never wins) and the log."""
    if not candidates:
        raise ValueError("choose needs at least one candidate")
    log = [(dict(params), float(evaluate(params))) for params in candidates]
    best = max(range(len(log)), key=lambda i: (-math.inf if math.isnan(log[i][1]) else log[i][1], -i))
    return dict(log[best][0]), log
