"""The rerank DAG's answers: stored in ``recsys.rerank_requests`` / ``recsys.rerank_results``, returned as XCom.

This module owns both tables (SQL in ``sql/queries/rerank_results.sql``). An answer is
stored per Airflow run: a retried task replaces its own answer, never duplicates it. The
ranked list stored and returned is the result's own, the best ``k`` when ``k`` was given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from recsys.db.sql import dbapi, queries
from recsys.scoring.rerank import RerankResult


def store(
    conn: sa.Connection, dag_id: str, airflow_run_id: str, request: Mapping[str, Any], result: RerankResult
) -> int:
    """Replace the answer of this Airflow run with ``result``, in ``conn``'s transaction; return its request id.

    ``request`` is the validated request (``user_id``, ``k``, ``candidates`` as given).
    """
    db = dbapi(conn)
    queries("rerank_results").delete_request(db, dag_id=dag_id, airflow_run_id=airflow_run_id)
    request_id = queries("rerank_results").insert_request(
        db,
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
        user_id=request["user_id"],
        k=request["k"],
        candidates=json.dumps(request["candidates"]),
        precompute_run_id=result.run_id,
        model_version=result.model_version,
        unknown_titles=result.unknown_titles,
        ambiguous_titles=json.dumps(_ambiguous(result)),
        unknown_movie_ids=result.unknown_movie_ids,
        unscored_movie_ids=result.unscored_movie_ids,
    )
    if result.ranked:
        queries("rerank_results").insert_results(
            db,
            [
                {
                    "request_id": request_id,
                    "position": i,
                    "movie_id": c.movie_id,
                    "title": c.title,
                    "score": c.score,
                    "rank": c.rank,
                    "seen": c.seen,
                    "predicted_rating": c.predicted_rating,
                }
                for i, c in enumerate(result.ranked, start=1)
            ],  # fmt: skip
        )
    return request_id


def answer(request_id: int, result: RerankResult) -> dict[str, Any]:
    """The stored answer as the task's XCom: JSON types only, scores rounded to 6 decimals."""
    return {
        "request_id": request_id,
        "user_id": result.user_id,
        "precompute_run_id": result.run_id,
        "model_version": result.model_version,
        "published_at": result.published_at.isoformat(),
        "ranked": [
            {
                "position": i,
                "movie_id": c.movie_id,
                "title": c.title,
                "score": round(c.score, 6),
                "predicted_rating": None if c.predicted_rating is None else round(c.predicted_rating, 6),
                "rank": c.rank,
                "seen": c.seen,
            }
            for i, c in enumerate(result.ranked, start=1)
        ],  # fmt: skip
        "unknown_titles": result.unknown_titles,
        "suggestions": [
            {"title": s.title, "matches": [{"movie_id": m.movie_id, "title": m.title} for m in s.matches]}
            for s in result.suggestions
        ],
        "ambiguous_titles": _ambiguous(result),
        "unknown_movie_ids": result.unknown_movie_ids,
        "unscored_movie_ids": result.unscored_movie_ids,
        "duplicates": result.duplicates,
    }


def _ambiguous(result: RerankResult) -> list[dict[str, Any]]:
    return [{"title": a.title, "movie_ids": a.movie_ids} for a in result.ambiguous_titles]
