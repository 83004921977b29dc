"""Accuracy and ranking metrics, and the side-by-side comparison on one split.

Every method is fitted on the same training part and scored on the same test part, so
the numbers in one table are directly comparable. The ranking protocol is stated in
``PROTOCOL`` and printed with every report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from recsys.data.movielens import MovieLens
from recsys.data.splits import Split, make_split
from recsys.model.baselines import BASELINES, SEED_FAITHFUL

log = logging.getLogger(__name__)

K = 10
RELEVANT = 4  # rating >= 4 counts as relevant
PROTOCOL = (
    f"RMSE/MAE over all test ratings. Ranking: for each test user, that user's test movies are "
    f"ranked by predicted score (ties by movie id); relevance = rating >= {RELEVANT}; "
    f"NDCG@{K} (binary gain, ideal = the user's relevant test movies first), "
    f"Precision@{K} = relevant in top {K} / min({K}, user's test movies), "
    f"Recall@{K} = relevant in top {K} / user's relevant test movies; "
    f"averaged over test users with at least one relevant test movie."
)


@dataclass
class MethodResult:
    method: str
    label: str
    rmse: float | None
    mae: float | None
    ndcg: float
    precision: float
    recall: float
    fit_seconds: float
    notes: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def rating_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    err = np.asarray(predicted, float) - np.asarray(actual, float)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def ranking_metrics(test: pd.DataFrame, scores: np.ndarray, k: int = K) -> dict[str, float]:
    """Per-user top-k quality of the test items (see ``PROTOCOL``)."""
    frame = test[["user_id", "movie_id", "rating"]].assign(score=np.asarray(scores, float))
    frame = frame.sort_values(["user_id", "score", "movie_id"], ascending=[True, False, True], kind="stable")
    frame["rank"] = frame.groupby("user_id").cumcount()
    frame["rel"] = (frame["rating"] >= RELEVANT).astype(float)
    frame["gain"] = frame["rel"] / np.log2(frame["rank"] + 2.0)
    top = frame[frame["rank"] < k]
    per_user = pd.DataFrame(
        {
            "items": frame.groupby("user_id").size(),
            "relevant": frame.groupby("user_id")["rel"].sum(),
            "hits": top.groupby("user_id")["rel"].sum(),
            "dcg": top.groupby("user_id")["gain"].sum(),
        }
    )
    per_user = per_user[per_user["relevant"] > 0]
    if per_user.empty:
        return {"ndcg": float("nan"), "precision": float("nan"), "recall": float("nan"), "users": 0}
    ideal_n = np.minimum(per_user["relevant"].to_numpy(int), k)
    discounts = np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))
    idcg = discounts[ideal_n - 1]
    return {
        "ndcg": float(np.mean(per_user["dcg"].to_numpy() / idcg)),
        "precision": float(np.mean(per_user["hits"] / np.minimum(per_user["items"], k))),
        "recall": float(np.mean(per_user["hits"] / per_user["relevant"])),
        "users": int(len(per_user)),
    }


def score_method(
    method: str, label: str, test: pd.DataFrame, predicted: np.ndarray, seconds: float, rates: bool = True, **notes
) -> MethodResult:
    acc = rating_metrics(test["rating"].to_numpy(), predicted) if rates else {"rmse": None, "mae": None}
    rank = ranking_metrics(test, predicted)
    return MethodResult(
        method, label, acc["rmse"], acc["mae"], rank["ndcg"], rank["precision"], rank["recall"], seconds, notes
    )


def evaluate_split(
    ml: MovieLens,
    split: Split | str,
    methods: list[str],
    model_configs: dict[str, object],
    seed: int = 42,
    on_result: Callable[[MethodResult], None] | None = None,
    verbose: int = 0,
) -> list[MethodResult]:
    """Fit each baseline in ``methods`` and each TFRS config in ``model_configs`` on one split.

    ``model_configs`` maps a method name (e.g. ``tfrs_full``) to a ``ModelConfig``; the
    seed-faithful TFRS baseline is added when ``methods`` names it.
    """
    from recsys.model.config import preset
    from recsys.model.train import train

    if isinstance(split, str):
        split = make_split(split, ml.ratings, ml.split_tests)
    configs = dict(model_configs)
    if SEED_FAITHFUL in methods:
        configs = {"tfrs_seed_faithful": preset(SEED_FAITHFUL, seed=seed), **configs}
    results: list[MethodResult] = []

    def done(result: MethodResult) -> None:
        results.append(result)
        log.info("%s on %s: rmse=%s ndcg=%.4f (%.1fs)", result.method, split.name, result.rmse, result.ndcg,
                 result.fit_seconds)  # fmt: skip
        if on_result:
            on_result(result)

    for name in methods:
        if name == SEED_FAITHFUL:
            continue
        baseline = BASELINES[name]
        started = time.perf_counter()
        predict = baseline.fit(split.train, seed)
        predicted = predict(split.test)
        done(score_method(name, baseline.label, split.test, predicted, time.perf_counter() - started,
                          baseline.predicts_ratings))  # fmt: skip
    for name, cfg in configs.items():
        trained = train(ml, split, cfg, verbose=verbose)
        predicted = trained.predict(split.test)
        label = f"TFRS {cfg.name}" + (" (3 epochs, as the original)" if cfg.name == SEED_FAITHFUL else "")
        done(
            score_method(
                name, label, split.test, predicted, trained.train_seconds,
                validation_rmse=trained.validation.get("rmse"), best_epoch=trained.best_epoch,
            )
        )  # fmt: skip
    return results


def fold_means(per_fold: dict[str, list[MethodResult]]) -> list[MethodResult]:
    """Mean of each method's metrics over folds (methods in first-fold order)."""
    order = [r.method for r in next(iter(per_fold.values()))]
    out = []
    for method in order:
        rows = [r for results in per_fold.values() for r in results if r.method == method]

        def mean(attr: str, rows=rows) -> float | None:
            values = [getattr(r, attr) for r in rows]
            return None if any(v is None for v in values) else float(np.mean(values))

        out.append(
            MethodResult(
                method, rows[0].label, mean("rmse"), mean("mae"), mean("ndcg"), mean("precision"),
                mean("recall"), float(np.mean([r.fit_seconds for r in rows])),
                {"folds": list(per_fold), "rmse_per_fold": [r.rmse for r in rows]},
            )
        )  # fmt: skip
    return out
