"""The API's read queries other than rerank (which lives in recsys.scoring.rerank).

Each answer is one statement, so it comes from one snapshot of one published run.
All values are bound parameters.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import namedtuple_row

from recsys.api import schemas
from recsys.scoring.rerank import NoPublishedRanking, UnknownUser

TOP_K_SQL = """
WITH pub AS MATERIALIZED (
    SELECT run_id, model_version, published_at FROM recsys.published_ranking LIMIT 1  -- a singleton; tells the planner
)
SELECT p.run_id, p.model_version, p.published_at,
       EXISTS (SELECT 1 FROM recsys.ranked_scores s
               WHERE s.run_id = (SELECT run_id FROM pub) AND s.user_id = %(user_id)s) AS user_known,
       t.rank, t.movie_id, m.title, m.genres, t.score
FROM pub p
LEFT JOIN LATERAL (
    SELECT s.rank, s.movie_id, s.score
    FROM recsys.ranked_scores s
    WHERE s.run_id = (SELECT run_id FROM pub) AND s.user_id = %(user_id)s AND s.rank <= %(k)s
    ORDER BY s.rank
    LIMIT %(k)s
) t ON true
LEFT JOIN LATERAL (  -- k primary-key probes, never a scan of all movies
    SELECT m.title, m.genres FROM recsys.movies m WHERE m.movie_id = t.movie_id LIMIT 1
) m ON true
ORDER BY t.rank
"""

MOVIES_SQL = """
SELECT movie_id, title, release_year, genres
FROM recsys.movies
WHERE strpos(lower(title), lower(%(q)s)) > 0
ORDER BY lower(title) = lower(%(q)s) DESC, starts_with(lower(title), lower(%(q)s)) DESC, title, movie_id
LIMIT %(limit)s
"""

READY_SQL = "SELECT run_id, model_version, published_at FROM recsys.published_ranking"


async def top_k(conn: psycopg.AsyncConnection, user_id: int, k: int) -> schemas.TopKResponse:
    cur = await conn.cursor(row_factory=namedtuple_row).execute(TOP_K_SQL, {"user_id": user_id, "k": k})
    rows = await cur.fetchall()
    if not rows:
        raise NoPublishedRanking()
    first = rows[0]
    if not first.user_known:
        raise UnknownUser(user_id, first.run_id)
    recommendations = [
        schemas.Recommendation(
            rank=r.rank, movie_id=r.movie_id, title=r.title, genres=list(r.genres or []), score=float(r.score)
        )
        for r in rows
        if r.movie_id is not None
    ]
    return schemas.TopKResponse(
        user_id=user_id,
        k=k,
        model_version=first.model_version,
        run_id=first.run_id,
        published_at=first.published_at,
        recommendations=recommendations,
    )


async def search_movies(conn: psycopg.AsyncConnection, title: str, limit: int) -> schemas.MovieSearchResponse:
    """Case-insensitive substring search (no LIKE, so % and _ in the query are literal)."""
    cur = await conn.cursor(row_factory=namedtuple_row).execute(MOVIES_SQL, {"q": title, "limit": limit})
    rows = await cur.fetchall()
    movies = [
        schemas.Movie(movie_id=r.movie_id, title=r.title, release_year=r.release_year, genres=list(r.genres or []))
        for r in rows
    ]
    return schemas.MovieSearchResponse(query=title, movies=movies)


async def ready(conn: psycopg.AsyncConnection) -> schemas.Ready:
    cur = await conn.cursor(row_factory=namedtuple_row).execute(READY_SQL)
    row = await cur.fetchone()
    if row is None:
        raise NoPublishedRanking()
    return schemas.Ready(
        status="ready", model_version=row.model_version, run_id=row.run_id, published_at=row.published_at
    )
