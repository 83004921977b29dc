"""Train on a holdout -> gate -> refit on every rating -> export -> register, all or nothing.

The holdout model is measured (rating error and the full-catalogue list) and judged by the
promotion gate. A model that can win is then trained again on *all* ratings with the same
hyperparameters and the epochs the holdout chose (no early stopping: there is nothing left
to stop on), and that refit is what gets exported and served, so no rating is withheld
from the served model. Its registry row records the holdout metrics and the refit.

Bad input fails in ``train`` before anything is written. The artifact is exported
before the registry row is written (a row must never point at nothing), and removed
again if registration fails, so a failure leaves neither a row nor an orphan artifact.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recsys.data.movielens import MovieLens
from recsys.data.splits import Split, make_split
from recsys.model.config import ModelConfig
from recsys.model.registry import Decision, Gate, new_version_id, preview, register_and_gate

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    version_id: str
    artifact: Path
    metrics: dict[str, Any]
    decision: Decision
    trained: Any  # train.TrainedModel: the holdout model
    served: Any  # train.TrainedModel: what the artifact holds (the refit, or the holdout model)


def split_metrics(trained, split: Split, catalogue_movies, catalogue_users) -> dict[str, Any]:
    """The metrics recorded in the registry: rating error, the full-catalogue list, test-item ranking."""
    from recsys.model import topn
    from recsys.model.evaluate import PROTOCOL, model_scores, ranking_metrics, rating_metrics

    metrics: dict[str, Any] = {"test_ratings": int(len(split.test))}
    if len(split.test):
        predicted = trained.predict(split.test)
        metrics.update(rating_metrics(split.test["rating"].to_numpy(), predicted))
        metrics.update({f"test_item_{k}@10" if k != "users" else "test_item_users": v
                        for k, v in ranking_metrics(split.test, predicted).items()})  # fmt: skip
        catalogue = topn.Catalogue.from_frames(catalogue_users, catalogue_movies, split.train)
        metrics.update(topn.evaluate_topn(model_scores(trained, "score"), catalogue, split.test))
        metrics["protocol"] = {"topn": topn.PROTOCOL, "ratings": PROTOCOL}
    metrics.update(
        validation_rmse=trained.validation.get("rmse"),
        validation_ratings=trained.validation.get("ratings"),
        best_epoch=trained.best_epoch,
        member_epochs=trained.member_epochs,
        retrieval_epochs=trained.retrieval_epochs,
        train_ratings=int(len(split.train)),
        train_seconds=round(trained.train_seconds, 2),
    )
    return metrics


def train_and_register(
    ml: MovieLens,
    split: Split | str,
    cfg: ModelConfig,
    bind: sa.Engine | sa.Connection,
    artifacts_dir: Path,
    *,
    gate: Gate | None = None,
    promote: bool = True,
    refit: bool = True,
    verbose: int = 2,
) -> TrainResult:
    from recsys.errors import DataError
    from recsys.model.export import export_model
    from recsys.model.train import refit_all, train

    gate = gate or Gate()
    if isinstance(split, str):
        split = make_split(split, ml.ratings, ml.split_tests, ml.scale)
    if split.test.empty:
        raise DataError(f"split {split.name!r} has no test ratings: the promotion gate needs a holdout")
    trained = train(ml, split, cfg, verbose=verbose)
    metrics = split_metrics(trained, split, ml.movies["movie_id"], ml.users["user_id"])
    served = trained
    status, _ = preview(bind, metrics, split.name, gate, ml.fingerprint, promote)
    if refit and status == "champion":
        log.info("the holdout model can win (%s); refitting on all %d ratings", split.name, len(ml.ratings))
        served = refit_all(ml, trained, verbose=verbose)
        metrics["refit"] = {
            "ratings": int(len(ml.ratings)),
            "member_epochs": served.member_epochs,
            "retrieval_epochs": served.retrieval_epochs,
            "train_seconds": round(served.train_seconds, 2),
        }
    version_id = new_version_id()
    extra = {"version_id": version_id, "refit": served is not trained}
    artifact = export_model(served, Path(artifacts_dir) / version_id, extra=extra)
    try:
        decision = register_and_gate(
            bind,
            version_id=version_id,
            data_fingerprint=ml.fingerprint,
            split=split.name,
            config=cfg.to_json(),
            metrics=metrics,
            artifact_uri=str(artifact.resolve()),
            tolerance=gate.rmse_tolerance,
            recall_tolerance=gate.recall_tolerance,
            promote=promote,
        )
    except BaseException:
        shutil.rmtree(artifact, ignore_errors=True)
        raise
    log.info("registered %s as %s: %s", version_id, decision.status, decision.reason)
    return TrainResult(version_id, artifact, metrics, decision, trained, served)
