"""Export a trained model as a self-contained SavedModel, and load one back.

The artifact holds the weights, the vocabularies (lookup tables) and the rating-history
bags as variables, so ``tf.saved_model.load(path)`` is all a consumer needs: no TFRS, no
training code. ``assets.extra/metadata.json`` records the config, vocabulary sizes and
the signatures' shapes for humans and for the registry. The export is written to a
temporary sibling directory and renamed into place, so a half-written artifact never
sits at the final path.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from recsys.errors import RecsysError
from recsys.model.inputs import pair_features
from recsys.model.serving import MOVIE_PARTS, USER_PARTS, call_in_chunks

METADATA = "assets.extra/metadata.json"
SIGNATURES = ("serving_default", "user_tower", "movie_tower", "score_pairs", "score_grid")
FORMAT = "recsys-ranker/2"  # 2: every score function returns ``rating`` and ``score`` (the list order)


class ArtifactError(RecsysError):
    """A model artifact is missing, incomplete or unreadable."""


def export_model(trained, path: Path | str, extra: dict[str, Any] | None = None) -> Path:
    """Write ``trained`` (a ``train.TrainedModel``) as a SavedModel at ``path``; return it."""
    path = Path(path)
    if path.exists():
        raise ArtifactError(f"artifact path {path} already exists; refusing to overwrite a model")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        module = trained.module
        user_inputs, movie_inputs = (_describe(trained.vocab.inputs(side)) for side in ("user", "movie"))
        tf.saved_model.save(_artifact_root(module), str(staging), signatures=module.signatures())
        metadata = {
            "format": FORMAT,
            "config": trained.config.to_json(),
            "split": trained.split,
            "data_fingerprint": trained.data_fingerprint,
            "global_mean": trained.vocab.global_mean,
            "rating_scale": [trained.vocab.scale.low, trained.vocab.scale.high, trained.vocab.scale.step],
            "known_users": len(trained.vocab.user_ids),
            "known_movies": len(trained.vocab.movie_ids),
            "best_epoch": trained.best_epoch,
            "member_epochs": trained.member_epochs,
            "retrieval_epochs": trained.retrieval_epochs,
            "validation": trained.validation,
            "signatures": {
                "serving_default": {"inputs": user_inputs | movie_inputs, "outputs": ["rating", "score"]},
                "user_tower": {"inputs": user_inputs, "outputs": list(USER_PARTS)},
                "movie_tower": {"inputs": movie_inputs, "outputs": list(MOVIE_PARTS)},
                "score_pairs": {
                    "inputs": [f"user_{p}" for p in USER_PARTS] + [f"movie_{p}" for p in MOVIE_PARTS],
                    "outputs": ["rating", "score"],
                    "hidden_dim": module.hidden_dim,
                    "dot_dim": module.dot_dim,
                    "query_dim": module.query_dim,
                },
                "score_grid": {
                    "inputs": [f"user_{p}" for p in USER_PARTS] + [f"movie_{p}" for p in MOVIE_PARTS],
                    "outputs": ["rating [users, movies]", "score [users, movies]"],
                },
            },
            **(extra or {}),
        }
        (staging / "assets.extra").mkdir(exist_ok=True)
        (staging / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True), encoding="utf-8")
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _artifact_root(module) -> tf.Module:
    """What the SavedModel holds: the weights, the lookup tables and the serving functions.

    Saving the ``ServingModule`` itself would also serialise every Keras layer's own traced
    call functions, which no consumer calls and which make every load slower; every precompute
    shard in Airflow is a new process that pays the load (measured: docs/MODEL.md, "Tower split").
    """
    root = tf.Module(name="ranker")
    root.weights = list(module.model.variables) + [v for head in module.heads for v in head.variables]
    root.tables = [
        node
        for node in tf.train.TrackableView(module).descendants()
        if isinstance(node, tf.saved_model.experimental.TrackableResource)
    ]
    for name in module.signatures():
        setattr(root, name, getattr(module, name))
    return root


def _describe(spec: dict[str, tf.DType]) -> dict[str, str]:
    return {name: dtype.name for name, dtype in spec.items()}


@dataclass
class LoadedModel:
    """A SavedModel loaded with plain TensorFlow, plus its metadata."""

    path: Path
    saved: Any
    metadata: dict[str, Any]

    def signature(self, name: str):
        return self.saved.signatures[name]

    def has_signature(self, name: str) -> bool:
        return name in self.saved.signatures

    def predict_features(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return call_in_chunks(self.signature("serving_default"), features)

    def predict(self, pairs: pd.DataFrame, users: pd.DataFrame, movies: pd.DataFrame) -> np.ndarray:
        """Ratings for (user_id, movie_id) pairs; ``users``/``movies`` from ``inputs.*_table``."""
        return self.predict_features(pair_features(pairs, users, movies))


def load_model(path: Path | str) -> LoadedModel:
    """Load an exported model; a missing or broken artifact raises ``ArtifactError``."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ArtifactError(f"no model artifact at {path} (saved_model.pb missing); was it deleted or moved?")
    try:
        saved = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise ArtifactError(f"cannot load the model artifact at {path}: {exc}") from exc
    meta_path = path / METADATA
    metadata = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    if metadata.get("format") != FORMAT:
        raise ArtifactError(
            f"model artifact at {path} has format {metadata.get('format')!r}, this version serves {FORMAT!r} "
            "(a ranking score beside the rating); train a new model with `recsys train`"
        )
    missing = [s for s in SIGNATURES if s not in saved.signatures]
    if missing:
        raise ArtifactError(f"model artifact at {path} lacks signature(s) {', '.join(missing)}")
    return LoadedModel(path, saved, metadata)
