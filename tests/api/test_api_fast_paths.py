"""The API's per-request shortcuts keep its contract: pre-serialised bodies, the in-memory
rate limiter, and running a query without a pre-ping on a recently used connection.

- Bodies: endpoints return pydantic's serialisation of plain dicts instead of models;
  these tests check the bytes are those of the response models (unit, with awkward
  values, and over HTTP against the live API).
- Rate limit: ``MemoryMovingWindow`` has the moving-window semantics of `limits`.
- ``db.fetch``: a connection the server closed is replaced and the read retried once; a
  timeout is not retried; an idle connection is still checked before use.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from limits import parse_many
from pydantic_core import to_json

from recsys.api import db, queries, schemas
from recsys.api.limits import MemoryMovingWindow
from recsys.api.settings import ApiSettings
from recsys.scoring.rerank import AmbiguousTitle, RankedCandidate, RerankResult
from tests.support.api import ApiServer, Published
from tests.support.db import as_role

RERANK = "/recommendation/ranked_recommendation"
PUBLISHED_AT = datetime(2026, 11, 26, 23, 55, 36, 291711, tzinfo=UTC)


def model_bytes(model: type, document: object) -> bytes:
    """What FastAPI sends for ``document`` as ``response_model=model``: validated, then dumped."""
    return model.model_validate(document).model_dump_json().encode()


# --- bodies -------------------------------------------------------------------------------


def test_top_k_document_serialises_as_the_model():
    document = {
        "model_version": "v1 é",
        "run_id": 7,
        "published_at": PUBLISHED_AT,
        "user_id": 17,
        "k": 3,
        "recommendations": [
            {
                "rank": 1,
                "movie_id": 318,
                "title": "Schindler's List (1993)",
                "genres": ["Drama"],
                "score": 15.25,
                "predicted_rating": 5.0,
            },
            {
                "rank": 2,
                "movie_id": 64,
                "title": 'Amélie 🎬 "漢字"',
                "genres": [],
                "score": -3.4451108,
                "predicted_rating": 3.4451108,
            },
            {"rank": 3, "movie_id": 1, "title": "x", "genres": ["A", "B"], "score": -1e-45, "predicted_rating": None},
        ],
    }
    assert to_json(document) == model_bytes(schemas.TopKResponse, document)
    assert queries.json_response(document).body == to_json(document)


def test_rerank_document_serialises_as_the_model():
    result = RerankResult(17, 7, "v1", PUBLISHED_AT, duplicates=["Heat (1995)", 3])
    result.ranked = [
        RankedCandidate(273, "Heat (1995)", ["Action"], -7.5, None, True, 5.0),
        RankedCandidate(2, "GoldenEye (1995)", [], 2.8430457, 1220, False, None),
        RankedCandidate(1, "Toy Story (1995)", [], 1e20, 1, False, 1.0),
    ]
    result.unknown_titles = ["No Such Movie", "Amélie 🎬"]
    result.ambiguous_titles = [AmbiguousTitle("Chasing Amy (1997)", [246, 268])]
    result.unknown_movie_ids, result.unscored_movie_ids = [424242], [1683]
    document = queries.rerank_document(result)
    assert to_json(document) == model_bytes(schemas.RerankResponse, document)
    # ... and as the previous code built it: the model from the result's attributes.
    assert (
        to_json(document)
        == schemas.RerankResponse.model_validate(result, from_attributes=True).model_dump_json().encode()
    )


def test_search_and_ready_documents_serialise_as_the_models():
    search = {
        "query": "heat",
        "movies": [{"movie_id": 273, "title": "Heat (1995)", "release_year": None, "genres": []}],
    }
    assert to_json(search) == model_bytes(schemas.MovieSearchResponse, search)
    ready = {"status": "ready", "model_version": "v1", "run_id": 1, "published_at": PUBLISHED_AT}
    assert to_json(ready) == model_bytes(schemas.Ready, ready)


@pytest.mark.parametrize(
    "method, path, body, model",
    [
        ("GET", "/users/17/recommendations?k=25", None, schemas.TopKResponse),
        ("POST", RERANK, {"user_id": "17", "candidate_movies": ["Heat (1995)", "nope", "chasing amy (1997)"]}, None),
        ("POST", RERANK, {"user_id": 5, "candidate_movie_ids": list(range(1, 301)), "candidate_movies": ["x"]}, None),
        ("GET", "/movies?title=the&limit=50", None, schemas.MovieSearchResponse),
        ("GET", "/ready", None, schemas.Ready),
    ],
)
def test_live_bodies_are_the_models_serialisation(api: ApiServer, method, path, body, model):
    response = api.client.request(method, path, json=body)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    model = model or schemas.RerankResponse
    assert response.content == model.model_validate_json(response.content).model_dump_json().encode()
    assert int(response.headers["content-length"]) == len(response.content)


def test_rerank_lists_follow_the_request_order(api: ApiServer):
    titles = ["zz unknown", "Chasing Amy (1997)", "aa unknown", "HEAT (1995)", "mm unknown", "chasing amy (1997)"]
    body = api.client.post(
        RERANK, json={"user_id": 17, "candidate_movies": titles, "candidate_movie_ids": [9999, 5555]}
    )
    body = body.json()
    assert body["unknown_titles"] == ["zz unknown", "aa unknown", "mm unknown"]
    assert [a["title"] for a in body["ambiguous_titles"]] == ["Chasing Amy (1997)", "chasing amy (1997)"]
    assert body["unknown_movie_ids"] == [9999, 5555]


# --- rate limit ---------------------------------------------------------------------------


def test_memory_moving_window():
    now = [1000.0]
    window = MemoryMovingWindow(parse_many("3/second;5/minute"), clock=lambda: now[0])
    assert [window.hit(0, "a") for _ in range(4)] == [True, True, True, False]
    assert window.hit(0, "b")  # per client
    now[0] += 0.5
    assert not window.hit(0, "a")  # still 3 in the last second
    now[0] += 0.51
    assert window.hit(0, "a")  # the first three are more than a second old
    assert [window.hit(1, "c") for _ in range(6)] == [True] * 5 + [False]
    now[0] += 61
    assert window.hit(1, "c")
    now[0] += 61
    window.hit(0, "d")  # a hit after the longest window sweeps idle clients
    assert {key for _, key in window.logs} == {"d"}


# --- fetch without a pre-ping ---------------------------------------------------------------


async def _replaced_connection(url: str, admin: str, idle_s: float) -> tuple[int, int, dict[str, int]]:
    """Backend pids of a first read and of a second one after the server closed the first
    backend, and the pool's statistics."""
    settings = ApiSettings(database_url=url, pool_size=1, max_overflow=0, pool_timeout_s=5.0)
    pool = db.create_pool(settings, url)
    await pool.open(wait=True)
    try:
        first = await db.fetch(pool, "SELECT pg_backend_pid()")
        old_pid = first[0][0]
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as owner:
            await owner.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
            for _ in range(50):  # until the server has closed it
                cur = await owner.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (old_pid,))
                if not await cur.fetchall():
                    break
                await asyncio.sleep(0.05)
        await asyncio.sleep(idle_s)
        second = await db.fetch(pool, "SELECT pg_backend_pid()")
        return old_pid, second[0][0], pool.get_stats()
    finally:
        await pool.close()


@pytest.mark.parametrize("idle", [False, True], ids=["busy-connection-retried", "idle-connection-checked"])
def test_fetch_survives_a_connection_the_server_closed(
    baseline: Published,
    monkeypatch: pytest.MonkeyPatch,
    idle: bool,
):
    """Used a moment ago: no ping, the read fails and is retried on a new connection.
    Idle for longer than PING_IF_IDLE_S: the pool's check finds it dead first."""
    if idle:
        monkeypatch.setattr(db, "PING_IF_IDLE_S", 0.05)
    old_pid, new_pid, stats = asyncio.run(
        _replaced_connection(as_role(baseline.url), db.conninfo(baseline.url), 0.2 * idle)
    )
    assert new_pid != old_pid  # answered, by a new connection
    assert stats.get("returns_bad", 0) == (0 if idle else 1)  # a read failed on it and was retried


def test_fetch_does_not_retry_a_timeout(baseline: Published):
    async def scenario() -> None:
        url = as_role(baseline.url)
        pool = db.create_pool(ApiSettings(database_url=url, pool_size=1, max_overflow=0, statement_timeout_ms=50), url)
        await pool.open(wait=True)
        try:
            calls = 0
            real_execute = psycopg.AsyncConnection.execute

            async def counting_execute(self, query, *args, **kwargs):
                nonlocal calls
                calls += "pg_sleep" in query  # not the pool's check of a fresh connection
                return await real_execute(self, query, *args, **kwargs)

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(psycopg.AsyncConnection, "execute", counting_execute)
                with pytest.raises(psycopg.errors.QueryCanceled):
                    await db.fetch(pool, "SELECT pg_sleep(1)")
            assert calls == 1
            assert await db.fetch(pool, "SELECT 1") == [(1,)]  # the connection is still fine
        finally:
            await pool.close()

    asyncio.run(scenario())
