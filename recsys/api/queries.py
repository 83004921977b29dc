"""The API's read queries, each answering with the JSON document of its response model.

Each answer is one statement (``sql/queries/lookup.sql``), so it comes from one snapshot
of one published run. All values are bound parameters.

The documents are plain dicts in the field order of the models in ``schemas`` and are
serialised by pydantic's own serialiser (``json_response``), so the bytes are those
FastAPI produced from the models (tests compare them); the models stay the OpenAPI
contract (``response_model``). Building the models and letting FastAPI validate them
again and serialise them would cost more per answer than the dicts (measured: docs/API.md,
"Design notes").
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from pydantic_core import to_json
from starlette.responses import Response

from recsys.api.db import fetch
from recsys.db.sql import queries
from recsys.scoring import title_match
from recsys.scoring.rerank import (
    RERANK_SQL,
    NoPublishedRanking,
    RerankResult,
    UnknownUser,
    build_result,
    rerank_params,
)

# The statements, in psycopg's %(name)s style, from sql/queries/lookup.sql.
TOP_K_SQL = queries("lookup").top_k.sql
MOVIES_SQL = queries("lookup").search_movies.sql
READY_SQL = queries("lookup").ready.sql


def json_response(document: Any) -> Response:
    """A 200 with ``document`` serialised as pydantic serialises the response models."""
    return Response(to_json(document), media_type="application/json")


async def top_k(pool: AsyncConnectionPool, user_id: int, k: int) -> dict[str, Any]:
    """``schemas.TopKResponse``."""
    rows = await fetch(pool, TOP_K_SQL, {"user_id": user_id, "k": k})
    if not rows:
        raise NoPublishedRanking()
    run_id, model_version, published_at, user_known = rows[0][:4]
    if not user_known:
        raise UnknownUser(user_id, run_id)
    recommendations = [
        {
            "rank": rank,
            "movie_id": movie_id,
            "title": title,
            "genres": genres or [],
            "score": float(score),
            "predicted_rating": None if rating is None else float(rating),
        }
        for *_, rank, movie_id, title, genres, score, rating in rows
        if movie_id is not None
    ]
    return {
        "model_version": model_version,
        "run_id": run_id,
        "published_at": published_at,
        "user_id": user_id,
        "k": k,
        "recommendations": recommendations,
    }


async def rerank(
    pool: AsyncConnectionPool, user_id: int, titles: list[str], movie_ids: list[int], k: int | None = None
) -> dict[str, Any]:
    """``schemas.RerankResponse``: ``recsys.scoring.rerank``'s statement, result and suggestions, as a document."""
    params, duplicates = rerank_params(user_id, titles, movie_ids)
    rows = await fetch(pool, RERANK_SQL, params)
    result = build_result(int(user_id), rows, duplicates)
    if result.unknown_titles:
        result.suggestions = (await title_index(pool)).suggestions(result.unknown_titles)
    return rerank_document(result.top(k))


async def title_index(pool: AsyncConnectionPool) -> title_match.TitleIndex:
    """The process's title index, re-read only when a new data set was ingested (one cheap query otherwise)."""
    rows = await fetch(pool, title_match.DATASET_SQL)
    dataset = tuple(rows[0]) if rows else None
    index = title_match.CACHE.get(dataset)
    if index is None:
        index = title_match.CACHE.put(dataset, await fetch(pool, title_match.TITLES_SQL))
    return index


def rerank_document(result: RerankResult) -> dict[str, Any]:
    return {
        "model_version": result.model_version,
        "run_id": result.run_id,
        "published_at": result.published_at,
        "user_id": result.user_id,
        "ranked": [
            {
                "movie_id": c.movie_id,
                "title": c.title,
                "genres": c.genres,
                "score": c.score,
                "predicted_rating": c.predicted_rating,
                "rank": c.rank,
                "seen": c.seen,
            }
            for c in result.ranked
        ],
        "unknown_titles": result.unknown_titles,
        "suggestions": [
            {"title": s.title, "matches": [{"movie_id": m.movie_id, "title": m.title} for m in s.matches]}
            for s in result.suggestions
        ],
        "ambiguous_titles": [{"title": a.title, "movie_ids": a.movie_ids} for a in result.ambiguous_titles],
        "unknown_movie_ids": result.unknown_movie_ids,
        "unscored_movie_ids": result.unscored_movie_ids,
        "duplicates": result.duplicates,
    }


async def search_movies(pool: AsyncConnectionPool, title: str, limit: int) -> dict[str, Any]:
    """``schemas.MovieSearchResponse``: case-insensitive substring search (no LIKE, so % and _ are literal)."""
    rows = await fetch(pool, MOVIES_SQL, {"q": title, "limit": limit})
    movies = [
        {"movie_id": movie_id, "title": t, "release_year": year, "genres": genres or []}
        for movie_id, t, year, genres in rows
    ]
    return {"query": title, "movies": movies}


async def ready(pool: AsyncConnectionPool) -> dict[str, Any]:
    """``schemas.Ready``."""
    rows = await fetch(pool, READY_SQL)
    if not rows:
        raise NoPublishedRanking()
    run_id, model_version, published_at = rows[0]
    return {"status": "ready", "model_version": model_version, "run_id": run_id, "published_at": published_at}
