"""Reference recommenders the TFRS model must beat, all fitted on the same training part.

The non-trivial ones are scikit-surprise's well-known implementations with their
default parameters (the settings behind the published ML-100K numbers), so the
comparison is against what a practitioner would actually reach for, not a straw man.
Every baseline maps a training frame to a ``predict(pairs) -> ratings`` function;
``popularity`` only ranks (it predicts no rating, so its RMSE is reported as n/a).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.errors import ConfigError

Predictor = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Baseline:
    name: str
    label: str
    fit: Callable[[pd.DataFrame, int], Predictor]
    predicts_ratings: bool = True


def _global_mean(train: pd.DataFrame, seed: int) -> Predictor:
    mean = float(train["rating"].mean())
    return lambda pairs: np.full(len(pairs), mean)


def _popularity(train: pd.DataFrame, seed: int) -> Predictor:
    """Score = number of training ratings (most-watched first); a ranking, not a rating."""
    counts = train.groupby("movie_id").size()
    return lambda pairs: pairs["movie_id"].map(counts).fillna(0).to_numpy(float)


def _top_rated(train: pd.DataFrame, seed: int, damping: float = 10.0) -> Predictor:
    """Item mean shrunk towards the global mean by ``damping`` pseudo-ratings (IMDb-style)."""
    mean = float(train["rating"].mean())
    stats = train.groupby("movie_id")["rating"].agg(["sum", "count"])
    score = (stats["sum"] + damping * mean) / (stats["count"] + damping)
    return lambda pairs: pairs["movie_id"].map(score).fillna(mean).to_numpy(float)


def _surprise(make_algo: Callable[[int], object]) -> Callable[[pd.DataFrame, int], Predictor]:
    def fit(train: pd.DataFrame, seed: int) -> Predictor:
        from surprise import Dataset, Reader

        # Surprise clips its estimates to this range: the training ratings' own (ML-100K 1-5, the
        # CSV releases 0.5-5), as the split carries no scale of its own.
        scale = (float(train["rating"].min()), float(train["rating"].max()))
        data = Dataset.load_from_df(train[["user_id", "movie_id", "rating"]], Reader(rating_scale=scale))
        algo = make_algo(seed)
        np.random.seed(seed)  # NormalPredictor and the SGD initialisers draw from numpy's global state
        algo.fit(data.build_full_trainset())

        def predict(pairs: pd.DataFrame) -> np.ndarray:
            np.random.seed(seed)
            return np.array([algo.predict(u, m).est for u, m in zip(pairs["user_id"], pairs["movie_id"], strict=True)])

        return predict

    return fit


def _algo(name: str) -> Callable[[int], object]:
    def make(seed: int):
        import surprise

        quiet = {"verbose": False}
        if name == "random":
            return surprise.NormalPredictor()
        if name == "baseline_only":
            return surprise.BaselineOnly(**quiet)
        if name == "knn_item":
            return surprise.KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False}, **quiet)
        if name == "knn_user":
            return surprise.KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": True}, **quiet)
        if name == "svd":
            return surprise.SVD(random_state=seed)
        if name == "svdpp":
            return surprise.SVDpp(random_state=seed)
        raise AssertionError(name)

    return make


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("global_mean", "Global mean", _global_mean),
        Baseline("random", "Random (normal, surprise NormalPredictor)", _surprise(_algo("random"))),
        Baseline("popularity", "Popularity (most rated)", _popularity, predicts_ratings=False),
        Baseline("top_rated", "Top-rated (damped item mean)", _top_rated),
        Baseline("baseline_only", "User+item bias (surprise BaselineOnly)", _surprise(_algo("baseline_only"))),
        Baseline("knn_item", "Item-based KNNBaseline (pearson_baseline)", _surprise(_algo("knn_item"))),
        Baseline("knn_user", "User-based KNNBaseline (pearson_baseline)", _surprise(_algo("knn_user"))),
        Baseline("svd", "SVD (surprise, defaults)", _surprise(_algo("svd"))),
        Baseline("svdpp", "SVD++ (surprise, defaults)", _surprise(_algo("svdpp"))),
    )
}
SEED_FAITHFUL = "seed_faithful"
TFRS_BASELINES = (SEED_FAITHFUL, "ids_only")  # TFRS presets trained by evaluate, not here


def all_baselines() -> tuple[str, ...]:
    """Every name ``--baselines`` takes: rating baselines, top-N baselines, TFRS presets."""
    from recsys.model.topn_baselines import TOPN_BASELINES

    return tuple(dict.fromkeys((*BASELINES, *TOPN_BASELINES, *TFRS_BASELINES)))


def parse_baselines(spec: str) -> list[str]:
    """``all``, ``none`` or a comma-separated list of names."""
    spec = spec.strip()
    names_known = all_baselines()
    if spec == "all":
        return list(names_known)
    if spec in ("", "none"):
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in names_known]
    if unknown:
        raise ConfigError(f"unknown baseline(s) {', '.join(unknown)}; choose from all, none, {', '.join(names_known)}")
    return names
