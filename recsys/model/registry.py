"""The model registry (``recsys.model_versions``) and its promotion gate.

A new model becomes champion only if, on the same holdout split, its full-catalogue
Recall@10 (the list users get) is no worse than the current champion's minus a tolerance
*and* its RMSE no worse than the champion's plus a tolerance; otherwise it is recorded as
rejected, with a reason that names both. On the champion's own data a challenger must also
be better on one of the two: a retrain that only ties (the same data, the same metrics) is
rejected, so identical models never churn the champion and the nightly ranking. Insert, gate decision and the old champion's retirement happen in one
transaction under a table lock, so two concurrent trainings cannot both win and a crash
leaves the registry as it was. RMSEs on different splits are not comparable, so a model
evaluated on another split than the champion is not promoted over it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from recsys.errors import ConfigError

STATUSES = ("challenger", "champion", "rejected", "retired")
DEFAULT_TOLERANCE = 0.0  # RMSE slack
DEFAULT_RECALL_TOLERANCE = 0.0  # Recall@10 slack
LIST_METRIC = "recall@10"  # full-catalogue, recsys.model.topn


@dataclass(frozen=True)
class Decision:
    version_id: str
    status: str
    reason: str
    previous_champion: str | None


@dataclass(frozen=True)
class ModelVersion:
    version_id: str
    created_at: datetime
    data_fingerprint: str
    split: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    artifact_uri: str
    status: str
    decision_reason: str | None
    promoted_at: datetime | None


_COLUMNS = (
    "version_id, created_at, data_fingerprint, split, config, metrics, artifact_uri, status, "
    "decision_reason, promoted_at"
)


def new_version_id(now: datetime | None = None) -> str:
    """Sortable by time, unique across machines: ``20260101T120000Z-1a2b3c4d``."""
    import uuid

    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _bind(bind: sa.Engine | sa.Connection):
    """A transaction on an engine, or a savepoint inside a caller's open transaction."""
    if isinstance(bind, sa.Engine):
        return bind.begin()
    return bind.begin_nested() if bind.in_transaction() else bind.begin()


def _connection(bind: sa.Engine | sa.Connection, tx) -> sa.Connection:
    """``engine.begin()`` yields the connection itself; ``connection.begin()`` a transaction."""
    return tx if isinstance(bind, sa.Engine) else bind


def register_and_gate(
    bind: sa.Engine | sa.Connection,
    *,
    version_id: str,
    data_fingerprint: str,
    split: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    artifact_uri: str,
    tolerance: float = DEFAULT_TOLERANCE,
    recall_tolerance: float = DEFAULT_RECALL_TOLERANCE,
    promote: bool = True,
) -> Decision:
    """Record a trained model and decide champion / rejected / challenger in one transaction."""
    gate = Gate(tolerance, recall_tolerance)
    _require_metrics(metrics)
    with _bind(bind) as tx:
        conn = _connection(bind, tx)
        conn.execute(sa.text("LOCK TABLE recsys.model_versions IN SHARE ROW EXCLUSIVE MODE"))
        champion = conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM recsys.model_versions WHERE status = 'champion'")
        ).first()
        status, reason = gate.decide(metrics, split, promote, champion, data_fingerprint)
        if status == "champion" and champion is not None:
            # Before the insert: the one-champion index is checked per statement.
            conn.execute(
                sa.text(
                    "UPDATE recsys.model_versions SET status = 'retired', decision_reason = "
                    "coalesce(decision_reason || '; ', '') || :why WHERE version_id = :old"
                ),
                {"old": champion.version_id, "why": f"retired: superseded by {version_id}"},
            )
        conn.execute(
            sa.text(
                "INSERT INTO recsys.model_versions (version_id, data_fingerprint, split, config, metrics, "
                "artifact_uri, status, decision_reason, promoted_at) VALUES (:version_id, :fp, :split, "
                "CAST(:config AS jsonb), CAST(:metrics AS jsonb), :uri, :status, :reason, "
                "CASE WHEN :status = 'champion' THEN now() END)"
            ),
            {
                "version_id": version_id,
                "fp": data_fingerprint,
                "split": split,
                "config": json.dumps(config, default=str),
                "metrics": json.dumps(metrics, default=str),
                "uri": artifact_uri,
                "status": status,
                "reason": reason,
            },
        )
    return Decision(version_id, status, reason, champion.version_id if champion is not None else None)


def _require_metrics(metrics: dict[str, Any]) -> None:
    for key in ("rmse", LIST_METRIC):
        value = metrics.get(key)
        if value is None or not isinstance(value, int | float) or value != value:
            raise ConfigError(f"metrics must include a finite {key!r} to register a model")


@dataclass(frozen=True)
class Gate:
    """Promotion rule: no worse on the list (Recall@10) and the rating (RMSE); better on one if the data is the same."""

    rmse_tolerance: float = DEFAULT_TOLERANCE
    recall_tolerance: float = DEFAULT_RECALL_TOLERANCE

    def __post_init__(self) -> None:
        if self.rmse_tolerance < 0 or self.recall_tolerance < 0:
            raise ConfigError(
                f"promotion tolerances must be >= 0, got RMSE {self.rmse_tolerance}, Recall@10 {self.recall_tolerance}"
            )

    def decide(
        self, metrics: dict[str, Any], split: str, promote: bool, champion, data_fingerprint: str
    ) -> tuple[str, str]:
        rmse, recall = float(metrics["rmse"]), float(metrics[LIST_METRIC])
        mine = f"Recall@10 {recall:.4f}, RMSE {rmse:.4f} on {split}"
        if not promote:
            return "challenger", f"promotion not requested (--no-promote); {mine}"
        if champion is None:
            return "champion", f"no current champion; {mine}"
        theirs = champion.metrics or {}
        if theirs.get(LIST_METRIC) is None or theirs.get("rmse") is None:
            return "champion", (
                f"champion {champion.version_id} has no full-catalogue Recall@10 and RMSE on record "
                f"(it predates the list metrics); {mine}"
            )
        if champion.split != split:
            return "rejected", (
                f"champion {champion.version_id} was evaluated on split {champion.split}, this model on "
                f"{split}: metrics on different splits are not comparable; train on {champion.split} to compete"
            )
        their_recall, their_rmse = float(theirs[LIST_METRIC]), float(theirs["rmse"])
        list_ok = recall >= their_recall - self.recall_tolerance
        rating_ok = rmse <= their_rmse + self.rmse_tolerance
        verdict = (
            f"Recall@10 {recall:.4f} {'>=' if list_ok else '<'} champion {champion.version_id}'s {their_recall:.4f} "
            f"- tolerance {self.recall_tolerance:g}; RMSE {rmse:.4f} {'<=' if rating_ok else '>'} "
            f"{their_rmse:.4f} + tolerance {self.rmse_tolerance:g}; on {split}"
        )
        if not (list_ok and rating_ok):
            worse = " and ".join(w for w, ok in (("the list", list_ok), ("the rating", rating_ok)) if not ok)
            return "rejected", f"worse on {worse}: {verdict}"
        better = recall > their_recall or rmse < their_rmse
        if not better and champion.data_fingerprint == data_fingerprint:
            return "rejected", (
                f"no better than champion {champion.version_id} on the same data (a tie is not a reason to "
                f"replace it): {verdict}"
            )
        return "champion", verdict


def preview(
    bind: sa.Engine | sa.Connection,
    metrics: dict[str, Any],
    split: str,
    gate: Gate,
    data_fingerprint: str,
    promote: bool = True,
):
    """What the gate would decide now (nothing written): lets training skip a refit that cannot win."""
    _require_metrics(metrics)
    champion = get_champion(bind)
    return gate.decide(metrics, split, promote, champion, data_fingerprint)


def get_champion(bind: sa.Engine | sa.Connection) -> ModelVersion | None:
    return _one(bind, "WHERE status = 'champion'", {})


def get_version(bind: sa.Engine | sa.Connection, version_id: str) -> ModelVersion | None:
    return _one(bind, "WHERE version_id = :v", {"v": version_id})


def list_versions(bind: sa.Engine | sa.Connection) -> list[ModelVersion]:
    with _reader(bind) as conn:
        rows = conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM recsys.model_versions ORDER BY created_at, version_id")
        ).all()
    return [ModelVersion(*row) for row in rows]


def _one(bind, where: str, params: dict) -> ModelVersion | None:
    with _reader(bind) as conn:
        row = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM recsys.model_versions {where}"), params).first()
    return ModelVersion(*row) if row is not None else None


class _reader:
    """Connection context for reads: borrow the caller's connection, or open one."""

    def __init__(self, bind):
        self.bind, self.conn = bind, None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.bind, sa.Engine):
            self.conn = self.bind.connect()
            return self.conn
        return self.bind

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            self.conn.close()
