"""The model registry (``recsys.model_versions``) and its promotion gate.

A new model becomes champion only if its RMSE on the evaluation split is no worse than
the current champion's plus a tolerance; otherwise it is recorded as rejected, with the
reason. Insert, gate decision and the old champion's retirement happen in one
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
DEFAULT_TOLERANCE = 0.0


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
    promote: bool = True,
) -> Decision:
    """Record a trained model and decide champion / rejected / challenger in one transaction."""
    if tolerance < 0:
        raise ConfigError(f"promotion tolerance must be >= 0, got {tolerance}")
    rmse = metrics.get("rmse")
    if rmse is None or not isinstance(rmse, int | float) or rmse != rmse:
        raise ConfigError("metrics must include a finite 'rmse' to register a model")
    with _bind(bind) as tx:
        conn = _connection(bind, tx)
        conn.execute(sa.text("LOCK TABLE recsys.model_versions IN SHARE ROW EXCLUSIVE MODE"))
        champion = conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM recsys.model_versions WHERE status = 'champion'")
        ).first()
        status, reason = _decide(rmse, split, tolerance, promote, champion)
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


def _decide(rmse: float, split: str, tolerance: float, promote: bool, champion) -> tuple[str, str]:
    if not promote:
        return "challenger", f"promotion not requested (--no-promote); RMSE {rmse:.4f} on {split}"
    if champion is None:
        return "champion", f"no current champion; RMSE {rmse:.4f} on {split}"
    champ_rmse = (champion.metrics or {}).get("rmse")
    if champion.split != split:
        return "rejected", (
            f"champion {champion.version_id} was evaluated on split {champion.split}, this model on "
            f"{split}: RMSEs on different splits are not comparable; train on {champion.split} to compete"
        )
    if champ_rmse is None:
        return "champion", f"champion {champion.version_id} has no RMSE on record; RMSE {rmse:.4f} on {split}"
    limit = float(champ_rmse) + tolerance
    if rmse <= limit:
        return "champion", (
            f"RMSE {rmse:.4f} <= champion {champion.version_id}'s {float(champ_rmse):.4f} + tolerance "
            f"{tolerance:g} on {split}"
        )
    return "rejected", (
        f"RMSE {rmse:.4f} > champion {champion.version_id}'s {float(champ_rmse):.4f} + tolerance "
        f"{tolerance:g} on {split}"
    )


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
