"""Top-k lookup and candidate reranking, both read from the published ranking only.

The endpoints return the serialised document (``queries.json_response``); the models in
``response_model`` document the contract (OpenAPI) and are what the bodies are tested
against (see ``recsys.api.queries`` for why they are not built per request).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request
from starlette.responses import Response

from recsys.api import queries, schemas
from recsys.api.db import get_pool

router = APIRouter(tags=["recommendations"], responses=schemas.error_responses(404, 413, 422, 429, 503))
RERANK_EXAMPLES = {
    "original": {
        "summary": "The original service's payload (user_id as a string, titles)",
        "value": {"user_id": "17", "candidate_movies": ["Toy Story (1995)", "GoldenEye (1995)", "Heat (1995)"]},
    },
    "ids": {"summary": "Movie ids", "value": {"user_id": 17, "candidate_movie_ids": [1, 2, 273, 246, 268]}},
    "top_k": {
        "summary": "Titles and ids mixed (as the rerank DAG takes them); only the best 2",
        "value": {"user_id": 17, "candidate_movies": ["Heat (1995)", 1, 2, 246], "k": 2},
    },
    "misspelt": {
        "summary": "Misspelt and partial titles: unknown, with suggestions",
        "value": {"user_id": 17, "candidate_movies": ["Toy Stroy (1995)", "toy story", "Heat"]},
    },
    "ambiguous": {
        "summary": "A duplicated title, an unknown title and a repeat",
        "value": {
            "user_id": 17,
            "candidate_movies": ["Chasing Amy (1997)", "No Such Movie", "Heat (1995)", "Heat (1995)"],
        },
    },
}


@router.get(
    "/users/{user_id}/recommendations",
    response_model=schemas.TopKResponse,
    summary="A user's top-k unseen movies from the published ranking",
    description=(
        "The user's unseen movies in rank order (rank 1 = highest ranking `score`). Each item has two numbers: "
        "`score`, the ranking score (orders the list; higher first; not a rating) and `predicted_rating`, the "
        "predicted rating 1-5 (null for a run published before migration 0007)."
    ),
)
async def recommendations(
    request: Request,
    user_id: Annotated[int, Path(ge=1, le=schemas.PG_INT_MAX, examples=[17]), schemas.DIGITS],
    k: Annotated[int, Query(ge=1, le=1000, description="How many movies."), schemas.DIGITS] = 10,
) -> Response:
    return queries.json_response(await queries.top_k(get_pool(request), user_id, k))


@router.post(
    "/recommendation/ranked_recommendation",
    response_model=schemas.RerankResponse,
    summary="Rank candidate movies (titles and/or ids) for a user",
    description=(
        "Compatible with the original service's payload. The candidates come back in the order of the published "
        "ranking: the unseen ones by `rank` (highest ranking `score` first, equal scores by lower movie id), then "
        "the ones the user has rated (`rank` null, `seen` true), by `score` the same way. `score` is the ranking "
        "score (orders the list; higher first; not a rating); `predicted_rating` is the predicted rating 1-5 "
        "(null for a run published before migration 0007) and orders nothing. `candidate_movies` takes titles "
        "and also integer movie ids (as the rerank DAG does), ranked as if given in `candidate_movie_ids`. A "
        "title that matches no movie (case-insensitive exact match) is listed in `unknown_titles`, and "
        "`suggestions` gives up to 3 movies it may have meant; one shared by several movies is listed in "
        "`ambiguous_titles` and all its movies are ranked; repeated candidates are answered once and listed in "
        "`duplicates`. At most 1,000 in each list; with `k`, only the best k ranked ones come back."
    ),
    responses=schemas.error_responses(400),
)
async def ranked_recommendation(
    request: Request, body: Annotated[schemas.RerankRequest, Body(openapi_examples=RERANK_EXAMPLES)]
) -> Response:
    document = await queries.rerank(get_pool(request), body.user_id, body.titles, body.movie_ids, body.k)
    return queries.json_response(document)
