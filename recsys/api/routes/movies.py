"""Title search: titles are not unique, so clients look up ids here first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from recsys.api import queries, schemas
from recsys.api.db import Conn

router = APIRouter(tags=["movies"], responses=schemas.error_responses(413, 422, 429, 503))
SearchTitle = Annotated[
    schemas.Title, Query(description="Case-insensitive substring of the title.", examples=["chasing amy"])
]


@router.get(
    "/movies",
    response_model=schemas.MovieSearchResponse,
    summary="Find movies by title (exact matches first; duplicates all listed)",
)
async def search_movies(
    conn: Conn, title: SearchTitle, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> schemas.MovieSearchResponse:
    return await queries.search_movies(conn, title, limit)
