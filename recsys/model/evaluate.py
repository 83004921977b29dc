"""Accuracy and ranking metrics, and the side-by-side comparison on one split.

Every method is fitted on the same training part and scored on the same test part, so
the numbers in one table are directly comparable. Two ranking protocols, both printed
with every report: the full-catalogue top-N of ``recsys.model.topn`` (the list a user
gets; ``topn.PROTOCOL``) and the older test-item ranking (``PROTOCOL`` here: each user's
own test movies reordered, which says little about the list and is labelled as such).
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
from recsys.model.baselines import BASELINES, TFRS_BASELINES
from recsys.model.topn import Catalogue, ScoreFn, evaluate_topn

log = logging.getLogger(__name__)

K = 10
RELEVANT = 4  # rating >= 4 counts as relevant
TFRS_LABELS = {
    "seed_faithful": "TFRS seed-faithful (3 epochs, as the original)",
    "ids_only": "TFRS ids only (no side features, no history)",
}
PROTOCOL = (
    f"RMSE/MAE over all test ratings. Test-item ranking: for each test user, that user's test movies are "
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
    topn: dict = field(default_factory=dict)  # full-catalogue metrics (topn.evaluate_topn); {} = not ranked

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
    method: str, label: str, test: pd.DataFrame, predicted: np.ndarray | None, seconds: float, rates: bool = True,
    topn: dict | None = None, **notes,
) -> MethodResult:  # fmt: skip
    """Rating and test-item metrics of ``predicted`` (None: a method that only ranks the catalogue)."""
    acc = rating_metrics(test["rating"].to_numpy(), predicted) if rates and predicted is not None else {}
    rank = ranking_metrics(test, predicted) if predicted is not None else {}
    nan = float("nan")
    return MethodResult(
        method, label, acc.get("rmse"), acc.get("mae"), rank.get("ndcg", nan), rank.get("precision", nan),
        rank.get("recall", nan), seconds, notes, topn or {},
    )  # fmt: skip


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
    seed-faithful and ids-only TFRS baselines are added when ``methods`` names them.
    Every method that can rank the whole catalogue is also measured by the full-catalogue
    top-N protocol; a TFRS model with a list head gets a second row, its list ordered by
    the predicted rating, to show what the head adds.
    """
    from recsys.model.config import preset
    from recsys.model.topn_baselines import TOPN_BASELINES, fit_tuned
    from recsys.model.train import train
    from recsys.model.tuning import is_temporal

    if isinstance(split, str):
        split = make_split(split, ml.ratings, ml.split_tests, ml.scale)
    catalogue = Catalogue.from_frames(ml.users["user_id"], ml.movies["movie_id"], split.train)
    configs = {f"tfrs_{name}": preset(name, seed=seed) for name in TFRS_BASELINES if name in methods}
    configs.update(model_configs)
    results: list[MethodResult] = []

    def done(result: MethodResult) -> None:
        results.append(result)
        log.info("%s on %s: rmse=%s recall@10=%s (%.1fs)", result.method, split.name, result.rmse,
                 result.topn.get("recall@10"), result.fit_seconds)  # fmt: skip
        if on_result:
            on_result(result)

    for name in methods:
        if name in TFRS_BASELINES:
            continue
        started = time.perf_counter()
        predicted, label, rates, notes, topn = None, None, False, {}, {}
        if name in BASELINES:
            baseline = BASELINES[name]
            predicted = baseline.fit(split.train, seed)(split.test)
            label, rates = baseline.label, baseline.predicts_ratings
        if name in TOPN_BASELINES:
            score, params, tuning = fit_tuned(name, split.train, ml, catalogue, seed, temporal=is_temporal(split.name))
            topn = evaluate_topn(score, catalogue, split.test)
            label = label or TOPN_BASELINES[name].label
            notes = {"params": params, "tuning": tuning}
        done(score_method(name, label, split.test, predicted, time.perf_counter() - started, rates, topn, **notes))
    for name, cfg in configs.items():
        trained = train(ml, split, cfg, verbose=verbose)
        predicted = trained.predict(split.test)
        label = TFRS_LABELS.get(cfg.name, f"TFRS {cfg.name}")
        notes = {"validation_rmse": trained.validation.get("rmse"), "best_epoch": trained.best_epoch,
                 "member_epochs": trained.member_epochs, "retrieval_epochs": trained.retrieval_epochs}  # fmt: skip
        topn = evaluate_topn(model_scores(trained, "score"), catalogue, split.test)
        done(score_method(name, label, split.test, predicted, trained.train_seconds, topn=topn, **notes))
        if cfg.retrieval_dim:
            by_rating = evaluate_topn(model_scores(trained, "rating"), catalogue, split.test)
            done(score_method(f"{name}_by_rating", f"{label}, list ordered by predicted rating", split.test,
                              predicted, 0.0, topn=by_rating))  # fmt: skip
    return results


def model_scores(trained, key: str) -> ScoreFn:
    """The trained model's ranking scores (``score``) or predicted ratings as a top-N score function."""
    return lambda user_ids, movie_ids: trained.score_grid(user_ids, movie_ids, key)


def fold_means(per_fold: dict[str, list[MethodResult]]) -> list[MethodResult]:
    """Mean of each method's metrics over folds (methods in first-fold order)."""
    order = [r.method for r in next(iter(per_fold.values()))]
    out = []
    for method in order:
        rows = [r for results in per_fold.values() for r in results if r.method == method]

        def mean(attr: str, rows=rows) -> float | None:
            values = [getattr(r, attr) for r in rows]
            return None if any(v is None for v in values) else float(np.mean(values))

        keys = set.intersection(*(set(r.topn) for r in rows))
        topn = {k: float(np.mean([r.topn[k] for r in rows])) for k in sorted(keys)}
        out.append(
            MethodResult(
                method, rows[0].label, mean("rmse"), mean("mae"), mean("ndcg"), mean("precision"),
                mean("recall"), float(np.mean([r.fit_seconds for r in rows])),
                {"folds": list(per_fold), "rmse_per_fold": [r.rmse for r in rows],
                 "recall@10_per_fold": [r.topn.get("recall@10") for r in rows]},
                topn,
            )
        )  # fmt: skip
    return out
