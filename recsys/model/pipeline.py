"""Train -> evaluate -> export -> register, as one step with all-or-nothing effects.

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
from recsys.model.registry import DEFAULT_TOLERANCE, Decision, new_version_id, register_and_gate

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    version_id: str
    artifact: Path
    metrics: dict[str, Any]
    decision: Decision
    trained: Any  # train.TrainedModel


def split_metrics(trained, split: Split) -> dict[str, Any]:
    """The metrics recorded in the registry: test accuracy and ranking, validation, timing."""
    from recsys.model.evaluate import PROTOCOL, ranking_metrics, rating_metrics

    metrics: dict[str, Any] = {"test_ratings": int(len(split.test))}
    if len(split.test):
        predicted = trained.predict(split.test)
        metrics.update(rating_metrics(split.test["rating"].to_numpy(), predicted))
        metrics.update({f"{k}@10" if k != "users" else "ranking_users": v
                        for k, v in ranking_metrics(split.test, predicted).items()})  # fmt: skip
        metrics["protocol"] = PROTOCOL
    metrics.update(
        validation_rmse=trained.validation.get("rmse"),
        validation_ratings=trained.validation.get("ratings"),
        best_epoch=trained.best_epoch,
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
    tolerance: float = DEFAULT_TOLERANCE,
    promote: bool = True,
    verbose: int = 2,
) -> TrainResult:
    from recsys.errors import DataError
    from recsys.model.export import export_model
    from recsys.model.train import train

    if isinstance(split, str):
        split = make_split(split, ml.ratings, ml.split_tests)
    if split.test.empty:
        raise DataError(f"split {split.name!r} has no test ratings: the promotion gate needs an RMSE")
    trained = train(ml, split, cfg, verbose=verbose)
    metrics = split_metrics(trained, split)
    version_id = new_version_id()
    artifact = export_model(trained, Path(artifacts_dir) / version_id, extra={"version_id": version_id})
    try:
        decision = register_and_gate(
            bind,
            version_id=version_id,
            data_fingerprint=ml.fingerprint,
            split=split.name,
            config=cfg.to_json(),
            metrics=metrics,
            artifact_uri=str(artifact.resolve()),
            tolerance=tolerance,
            promote=promote,
        )
    except BaseException:
        shutil.rmtree(artifact, ignore_errors=True)
        raise
    log.info("registered %s as %s: %s", version_id, decision.status, decision.reason)
    return TrainResult(version_id, artifact, metrics, decision, trained)
