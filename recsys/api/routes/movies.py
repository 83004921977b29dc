"""Title search: titles are not unique, so clients look up ids here first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from recsys.api import queries, schemas
from recsys.api.db import get_pool

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
    request: Request, title: SearchTitle, limit: Annotated[int, Query(ge=1, le=100), schemas.DIGITS] = 20
) -> Response:
    return queries.json_response(await queries.search_movies(get_pool(request), title, limit))
