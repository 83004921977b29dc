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

Every statement on ``recsys.model_versions`` is a named query in
``sql/queries/registry.sql`` run by this module; other code reads and writes versions
through the functions here (``tests/test_sql_owners.py`` keeps it so).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from aiosql.queries import Queries

from recsys.db.sql import dbapi, queries
from recsys.errors import ConfigError

STATUSES = ("challenger", "champion", "rejected", "retired")
DEFAULT_TOLERANCE = 0.0  # RMSE slack
DEFAULT_RECALL_TOLERANCE = 0.0  # Recall@10 slack
LIST_METRIC = "recall@10"  # full-catalogue, recsys.model.topn
BASELINE_REASON = "baseline for the lookup API"


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


def _sql() -> Queries:
    return queries("registry")


def _version(row: tuple | None) -> ModelVersion | None:
    """A registry row (the queries select ModelVersion's fields in order) as a ModelVersion."""
    return ModelVersion(*row) if row is not None else None


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
    with _locked(bind) as (pg, champion):
        status, reason = gate.decide(metrics, split, promote, champion, data_fingerprint)
        return _insert(pg, champion, version_id, data_fingerprint, split, config, metrics, artifact_uri, status, reason)


def register_baseline(
    bind: sa.Engine | sa.Connection,
    *,
    version_id: str,
    data_fingerprint: str,
    config: dict[str, Any],
    champion: bool,
) -> Decision:
    """Record a baseline (a model without holdout metrics, such as the lookup API's) under the gate's lock.

    The one way to install a version the gate cannot judge: ``champion=True`` makes it the
    champion whatever the current one scored (it is for trying the API, not a trained
    contender), in the same transaction, lock and retirement as ``register_and_gate``; the
    next trained model replaces it, because a champion without metrics on record always
    loses the gate. A version id that is already registered is left as it is.
    """
    with _locked(bind) as (pg, current):
        existing = _version(_sql().version_by_id(pg, version_id=version_id))
        if existing is not None:
            return Decision(
                version_id, existing.status, existing.decision_reason or "", current.version_id if current else None
            )
        status = "champion" if champion else "challenger"
        return _insert(pg, current, version_id, data_fingerprint, "all", config, {}, "", status, BASELINE_REASON)


@contextmanager
def _locked(bind: sa.Engine | sa.Connection) -> Iterator[tuple[psycopg.Connection, ModelVersion | None]]:
    """A transaction (or savepoint) holding the registry's lock, and the champion it sees."""
    with _bind(bind) as tx:
        pg = dbapi(_connection(bind, tx))
        _sql().lock_versions(pg)
        yield pg, _version(_sql().champion(pg))


def _insert(
    pg: psycopg.Connection,
    champion: ModelVersion | None,
    version_id: str,
    data_fingerprint: str,
    split: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    artifact_uri: str,
    status: str,
    reason: str,
) -> Decision:
    """Insert a decided version, retiring the champion it replaces."""
    if status == "champion" and champion is not None:
        # Before the insert: the one-champion index is checked per statement.
        _sql().retire_version(pg, old=champion.version_id, why=f"retired: superseded by {version_id}")
    _sql().insert_version(
        pg,
        version_id=version_id,
        fp=data_fingerprint,
        split=split,
        config=json.dumps(config, default=str),
        metrics=json.dumps(metrics, default=str),
        uri=artifact_uri,
        status=status,
        reason=reason,
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
    with _reader(bind) as conn:
        return _version(_sql().champion(dbapi(conn)))


def get_version(bind: sa.Engine | sa.Connection, version_id: str) -> ModelVersion | None:
    with _reader(bind) as conn:
        return _version(_sql().version_by_id(dbapi(conn), version_id=version_id))


def list_versions(bind: sa.Engine | sa.Connection) -> list[ModelVersion]:
    with _reader(bind) as conn:
        return [ModelVersion(*row) for row in _sql().all_versions(dbapi(conn))]


def champion_version_id(bind: sa.Engine | sa.Connection) -> str | None:
    """The champion's version id, or None when there is none."""
    with _reader(bind) as conn:
        return _sql().champion_version_id(dbapi(conn))


def is_known_version(bind: sa.Engine | sa.Connection, version_id: str) -> bool:
    with _reader(bind) as conn:
        return _sql().version_is_known(dbapi(conn), version_id=version_id) is not None


def artifact_uri(bind: sa.Engine | sa.Connection, version_id: str) -> str | None:
    """Where the version's exported model is ('' for a baseline), or None for an unknown version."""
    with _reader(bind) as conn:
        return _sql().artifact_uri(dbapi(conn), version_id=version_id)


def champion_summary(bind: sa.Engine | sa.Connection) -> dict[str, Any] | None:
    """The status page's champion: version_id, created_at, promoted_at, split, preset, rmse, decision_reason."""
    rows = _named_rows(bind, _sql().champion_summary_cursor)
    return rows[0] if rows else None


def newest_versions_summary(bind: sa.Engine | sa.Connection) -> list[dict[str, Any]]:
    """The status page's five newest versions, newest first: version_id, status, split, preset, rmse,
    created_at, decision_reason (its first 300 characters)."""
    return _named_rows(bind, _sql().newest_versions_summary_cursor)


def _named_rows(bind: sa.Engine | sa.Connection, cursor_of: Callable) -> list[dict[str, Any]]:
    """A query's rows as dicts keyed by its column names (its ``_cursor`` variant gives the names)."""
    with _reader(bind) as conn, cursor_of(dbapi(conn)) as cursor:
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


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
