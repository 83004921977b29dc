"""Liveness (the process answers) and readiness (it can serve a published ranking)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from recsys.api import queries, schemas
from recsys.api.db import get_pool

router = APIRouter(tags=["health"], responses=schemas.error_responses(413, 429))


@router.get("/health", response_model=schemas.Health, summary="Liveness: the process is up (no database call)")
async def health() -> schemas.Health:
    return schemas.Health()


@router.get(
    "/ready",
    response_model=schemas.Ready,
    summary="Readiness: the database answers and a ranking is published",
    responses=schemas.error_responses(503),
)
async def ready(request: Request) -> Response:
    return queries.json_response(await queries.ready(get_pool(request)))
