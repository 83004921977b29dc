"""The lookup API over real HTTP (uvicorn subprocess) against the real database, read-only role."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from recsys.api.db import conninfo
from recsys.config import PROJECT_ROOT
from tests.support.api import ApiServer, Published
from tests.support.db import as_role, db_fingerprint

RERANK = "/recommendation/ranked_recommendation"
ORIGINAL = {"user_id": "17", "candidate_movies": ["Toy Story (1995)", "GoldenEye (1995)", "Heat (1995)"]}


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}
    if error:
        assert body["error"] == error, body
    return body


# --- health, readiness, docs -------------------------------------------------------------


def test_health_and_ready(api: ApiServer, current_baseline: Published):
    assert api.client.get("/health").json() == {"status": "ok"}
    ready = api.client.get("/ready").json()
    assert ready["status"] == "ready"
    assert (ready["model_version"], ready["run_id"]) == (current_baseline.version, current_baseline.run_id)
    assert ready["published_at"]


def test_openapi_docs_with_examples(api: ApiServer):
    assert "swagger" in api.client.get("/docs").text.lower()
    spec = api.client.get("/openapi.json").json()
    assert {"/recommendation/ranked_recommendation", "/users/{user_id}/recommendations", "/movies"} <= set(
        spec["paths"]
    )
    examples = spec["paths"][RERANK]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert examples["original"]["value"] == ORIGINAL


@pytest.mark.parametrize(
    "titles, ids",
    [(0, 1000), (1, 999), (1000, 0), (1, 1000), (1000, 1000), (1001, 0), (0, 1001), (1000, 1001), (0, 0)],
)
def test_openapi_request_schema_is_what_the_server_enforces(api: ApiServer, titles: int, ids: int):
    """Valid by the published schema exactly when the server accepts it: 1 to 1,000 candidates in each list."""
    spec = api.client.get("/openapi.json").json()
    schema = spec["paths"][RERANK]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": spec["components"]})
    payload = {"user_id": 5, "candidate_movies": ["Heat (1995)"] * titles, "candidate_movie_ids": [1] * ids}
    status = api.client.post(RERANK, json=payload).status_code
    assert (validator.is_valid(payload), status) in ((True, 200), (False, 422))
    assert validator.is_valid(payload) == (titles + ids > 0 and titles <= 1000 and ids <= 1000)


def test_api_process_does_not_import_tensorflow():
    code = (
        "import sys; from recsys.api.main import create_app; create_app(); "
        "heavy = [m for m in ('tensorflow', 'keras', 'tf_keras', 'pandas') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT, timeout=60)


@pytest.mark.parametrize(
    "setting", ["RECSYS_API_POOL_SIZE=0", "RECSYS_API_RATE_LIMIT=lots", "RECSYS_API_STATEMENT_TIMEOUT_MS=x"]
)
def test_serve_rejects_bad_settings_with_one_line(setting: str):
    name, value = setting.split("=")
    env = {**os.environ, name: value}
    run = subprocess.run(
        [sys.executable, "-m", "recsys.api.commands", "serve", "--port", "1"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: invalid RECSYS_API_* setting") and "Traceback" not in run.stderr


# --- top-k --------------------------------------------------------------------------------


def test_top_k_is_the_published_ranking(api: ApiServer, current_baseline: Published):
    body = api.client.get("/users/17/recommendations").json()
    expected = current_baseline.expected_ranking(17).head(10)
    assert body["k"] == 10 and body["user_id"] == 17
    assert body["model_version"] == current_baseline.version and body["run_id"] == current_baseline.run_id
    assert [r["movie_id"] for r in body["recommendations"]] == expected.movie_id.tolist()
    assert [r["rank"] for r in body["recommendations"]] == list(range(1, 11))
    assert [np.float32(r["score"]) for r in body["recommendations"]] == expected.score.tolist()
    assert [np.float32(r["predicted_rating"]) for r in body["recommendations"]] == expected.predicted_rating.tolist()
    assert all(r["title"] and isinstance(r["genres"], list) for r in body["recommendations"])


def test_top_k_is_ordered_by_the_ranking_score_not_the_rating(api: ApiServer, current_baseline: Published):
    recommendations = api.client.get("/users/17/recommendations?k=100").json()["recommendations"]
    scores = [r["score"] for r in recommendations]
    ratings = [r["predicted_rating"] for r in recommendations]
    assert scores == sorted(scores, reverse=True)
    assert ratings != sorted(ratings, reverse=True)  # the two numbers order differently here
    assert all(1 <= r <= 5 for r in ratings)
    assert scores != ratings  # two numbers, not one reported twice


def test_top_k_sizes(api: ApiServer):
    assert len(api.client.get("/users/1/recommendations?k=1").json()["recommendations"]) == 1
    assert len(api.client.get("/users/1/recommendations?k=250").json()["recommendations"]) == 250


@pytest.mark.parametrize("path", ["/users/0/recommendations", "/users/abc/recommendations", "/users/1/recommendations?k=0",
                                  "/users/1/recommendations?k=1001", "/users/1/recommendations?k=x",
                                  "/users/99999999999999999999/recommendations", "/users/-1/recommendations"])  # fmt: skip
def test_top_k_invalid(api: ApiServer, path: str):
    assert_error(api.client.get(path), 422, "invalid_request")


def test_top_k_unknown_user_is_404(api: ApiServer):
    body = assert_error(api.client.get("/users/99999/recommendations"), 404, "unknown_user")
    assert "99999" in body["detail"]


# --- rerank -------------------------------------------------------------------------------


def test_rerank_original_payload(api: ApiServer, current_baseline: Published):
    body = api.client.post(RERANK, json=ORIGINAL).json()
    assert body["user_id"] == 17 and body["model_version"] == current_baseline.version
    ranked = body["ranked"]
    assert [r["movie_id"] for r in ranked] == current_baseline.expected_rerank(17, [1, 2, 273])
    for r in ranked:
        assert np.float32(r["score"]) == current_baseline.score(17, r["movie_id"])
        assert np.float32(r["predicted_rating"]) == current_baseline.rating(17, r["movie_id"])
        assert r["seen"] == ((17, r["movie_id"]) in current_baseline.seen)
    assert body["unknown_titles"] == [] and body["ambiguous_titles"] == [] and body["duplicates"] == []


def test_rerank_order_is_the_published_rank_order(api: ApiServer, current_baseline: Published):
    """Unseen candidates in the order of the published ranks (the top-k order), then the seen ones."""
    user = 17
    rated = sorted(m for u, m in current_baseline.seen if u == user)
    candidates = sorted(set(range(3, 1683, 11)) | set(rated[:25]))
    body = api.client.post(RERANK, json={"user_id": user, "candidate_movie_ids": candidates[::-1]}).json()
    ranked = body["ranked"]
    with current_baseline.engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT movie_id, rank FROM recsys.current_ranked_scores WHERE user_id = :u AND movie_id = ANY(:m) "
                "ORDER BY rank NULLS LAST, score DESC, movie_id"
            ),
            {"u": user, "m": candidates},
        ).all()
    assert [(r["movie_id"], r["rank"]) for r in ranked] == [tuple(row) for row in stored]
    assert [r["movie_id"] for r in ranked] == current_baseline.expected_rerank(user, candidates)
    # the unseen ones come in the top-k lookup's order
    top = api.client.get(f"/users/{user}/recommendations?k=1000").json()["recommendations"]
    position = {r["movie_id"]: r["rank"] for r in top}
    listed = [r["movie_id"] for r in ranked if r["movie_id"] in position]
    assert len(listed) > 50 and listed == sorted(listed, key=position.__getitem__)
    unseen = [r for r in ranked if not r["seen"]]
    assert [r["movie_id"] for r in unseen] != [
        r["movie_id"] for r in sorted(unseen, key=lambda r: (-r["predicted_rating"], r["movie_id"]))
    ]  # ordering by the rating would be wrong here
    assert all(r["seen"] for r in ranked[len(unseen) :]) and ranked[-1]["seen"]


def test_rerank_integer_user_and_ids(api: ApiServer):
    by_title = api.client.post(RERANK, json={**ORIGINAL, "user_id": 17}).json()
    by_id = api.client.post(RERANK, json={"user_id": 17, "candidate_movie_ids": [273, 1, 2]}).json()
    assert [r["movie_id"] for r in by_title["ranked"]] == [r["movie_id"] for r in by_id["ranked"]]


def test_rerank_ambiguous_unknown_and_duplicate_titles(api: ApiServer):
    payload = {
        "user_id": 17,
        "candidate_movies": ["Chasing Amy (1997)", "No Such Movie", "Heat (1995)", "Heat (1995)"],
        "candidate_movie_ids": [246, 424242],
    }
    body = api.client.post(RERANK, json=payload).json()
    assert body["ambiguous_titles"] == [{"title": "Chasing Amy (1997)", "movie_ids": [246, 268]}]
    assert body["unknown_titles"] == ["No Such Movie"]
    assert body["unknown_movie_ids"] == [424242]
    assert body["duplicates"] == ["Heat (1995)"]
    assert sorted(r["movie_id"] for r in body["ranked"]) == [246, 268, 273]


def test_rerank_takes_integer_ids_in_candidate_movies_as_the_dag_does(api: ApiServer):
    """Ids in candidate_movies were a 422 pointing nowhere; JSON tells 273 from "273", so they are ranked."""
    mixed = api.client.post(RERANK, json={"user_id": 17, "candidate_movies": ["Toy Story (1995)", 273, 2]})
    by_id = api.client.post(RERANK, json={"user_id": 17, "candidate_movie_ids": [1, 273, 2]}).json()
    assert mixed.status_code == 200, mixed.text
    assert [r["movie_id"] for r in mixed.json()["ranked"]] == [r["movie_id"] for r in by_id["ranked"]]
    digits = api.client.post(RERANK, json={"user_id": 17, "candidate_movies": ["273"]}).json()
    assert digits["unknown_titles"] == ["273"] and digits["ranked"] == []  # a string stays a title
    for bad in ([1.5], [True], [0], [{"movie_id": 1}]):
        detail = assert_error(api.client.post(RERANK, json={"user_id": 17, "candidate_movies": bad}), 422)["detail"]
        assert len(detail) == 1 and detail[0]["loc"][:3] == ["body", "candidate_movies", 0], detail


def test_rerank_k_returns_only_the_best_k(api: ApiServer):
    candidates = {"user_id": 17, "candidate_movie_ids": [1, 2, 273, 246, 268], "candidate_movies": ["No Such Movie"]}
    everything = api.client.post(RERANK, json=candidates).json()
    best = api.client.post(RERANK, json={**candidates, "k": 2}).json()
    assert best["ranked"] == everything["ranked"][:2] and len(everything["ranked"]) == 5
    assert best["unknown_titles"] == ["No Such Movie"]  # the other lists are not cut
    for k in (0, 1001, 2.0, "2", True):
        assert_error(api.client.post(RERANK, json={**candidates, "k": k}), 422, "invalid_request")
    spec = api.client.get("/openapi.json").json()
    k_schema = spec["components"]["schemas"]["RerankRequest"]["properties"]["k"]
    assert {"type": "integer", "minimum": 1, "maximum": 1000} in k_schema["anyOf"]
    assert "best k" in k_schema["description"]


def test_rerank_unknown_titles_get_the_closest_movies(api: ApiServer):
    payload = {"user_id": 17, "candidate_movies": ["Toy Stroy (1995)", "toy story", "Heat", "zzzzqx", "heat (1995)"]}
    body = api.client.post(RERANK, json=payload).json()
    assert body["unknown_titles"] == ["Toy Stroy (1995)", "toy story", "Heat", "zzzzqx"]
    assert [r["movie_id"] for r in body["ranked"]] == [273]  # the case-insensitive exact match still resolves
    by_title = {s["title"]: s["matches"] for s in body["suggestions"]}
    assert [s["title"] for s in body["suggestions"]] == body["unknown_titles"]
    assert by_title["Toy Stroy (1995)"][0] == {"movie_id": 1, "title": "Toy Story (1995)"}
    assert by_title["toy story"] == [{"movie_id": 1, "title": "Toy Story (1995)"}]
    assert by_title["Heat"][0] == {"movie_id": 273, "title": "Heat (1995)"} and len(by_title["Heat"]) == 3
    assert by_title["zzzzqx"] == []
    searched = api.client.get("/movies", params={"title": "heat"}).json()["movies"]
    assert searched[0]["movie_id"] == by_title["Heat"][0]["movie_id"]


def test_rerank_unknown_user_is_404(api: ApiServer):
    assert_error(api.client.post(RERANK, json={**ORIGINAL, "user_id": "99999"}), 404, "unknown_user")


def test_rerank_1000_candidates_is_fine(api: ApiServer):
    response = api.client.post(RERANK, json={"user_id": 5, "candidate_movie_ids": list(range(1, 1001))})
    assert response.status_code == 200 and len(response.json()["ranked"]) == 1000


@pytest.mark.parametrize(
    "payload",
    [
        {"candidate_movies": ["Heat (1995)"]},  # no user
        {"user_id": "17"},  # no candidates
        {"user_id": "17", "candidate_movies": []},
        {"user_id": "seventeen", "candidate_movies": ["Heat (1995)"]},
        {"user_id": "17.5", "candidate_movies": ["Heat (1995)"]},
        {"user_id": 17.5, "candidate_movies": ["Heat (1995)"]},
        {"user_id": True, "candidate_movies": ["Heat (1995)"]},
        {"user_id": None, "candidate_movies": ["Heat (1995)"]},
        {"user_id": 0, "candidate_movies": ["Heat (1995)"]},
        {"user_id": 2**31, "candidate_movies": ["Heat (1995)"]},
        {"user_id": "١٧", "candidate_movies": ["Heat (1995)"]},  # non-ASCII digits
        {"user_id": 17, "candidate_movies": "Heat (1995)"},
        {"user_id": 17, "candidate_movies": [["Heat (1995)"]]},
        {"user_id": 17.0, "candidate_movies": ["Heat (1995)"]},  # JSON Schema's integer, not ours
        {"user_id": 17, "candidate_movies": [1.0]},
        {"user_id": 17, "candidate_movies": [0]},
        {"user_id": 17, "candidate_movies": [{"title": "Heat (1995)"}]},
        {"user_id": 17, "candidate_movies": [""]},
        {"user_id": 17, "candidate_movies": [None]},
        {"user_id": 17, "candidate_movie_ids": ["1"]},
        {"user_id": 17, "candidate_movie_ids": [0]},
        {"user_id": 17, "candidate_movie_ids": [2**40]},
        {"user_id": 17, "candidate_movie_ids": [1.5]},
        {"user_id": 17, "candidate_movies": ["Heat (1995)"], "extra": 1},
        {"user_id": 17, "candidate_movie_ids": list(range(1, 1002))},  # 1,001
        {"user_id": 17, "candidate_movie_ids": list(range(1, 601)), "candidate_movies": ["x"] * 1001},  # titles over
        {"user_id": 17, "candidate_movie_ids": list(range(1, 10_001))},  # 10,000 (small enough body)
        [ORIGINAL],
        "just a string",
        None,
    ],
)
def test_rerank_invalid_payload_is_422(api: ApiServer, payload):
    assert_error(api.client.post(RERANK, json=payload), 422, "invalid_request")


@pytest.mark.parametrize(
    "title",
    ["a\x00b", "tab\there", "new\nline", "\x7f", "\x1b[31mred", "x" * 301, "\ud800"],
)
def test_rerank_titles_that_postgres_could_not_take_are_422(api: ApiServer, title: str):
    body = json.dumps({"user_id": 17, "candidate_movies": [title]})  # ensure_ascii: \u escapes, even surrogates
    response = api.client.post(RERANK, content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"not json", "application/json"),
        (b'{"user_id": 17, "candidate_movies": ["Heat (1995)"]', "application/json"),  # truncated
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"user_id=17&candidate_movies=Heat", "application/x-www-form-urlencoded"),
        (json.dumps(ORIGINAL).encode(), "text/plain"),
        (b"", "application/json"),
        (b"[" * 50_000 + b"]" * 50_000, "application/json"),  # deeply nested
        (b'{"user_id": 17, "candidate_movies": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}", "application/json"),
    ],
)
def test_rerank_non_json_or_nested_bodies_are_4xx_json(api: ApiServer, body: bytes, content_type: str):
    response = api.client.post(RERANK, content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"] in ("invalid_request", "bad_request")


def test_oversized_body_is_413(api: ApiServer):
    titles = ["A Long Movie Title (1995)"] * 20_000  # ~600 kB of JSON
    response = api.client.post(RERANK, json={"user_id": 17, "candidate_movies": titles})
    assert_error(response, 413, "body_too_large")


def test_oversized_chunked_body_is_413(api: ApiServer):
    def chunks():
        yield b'{"user_id": 17, "candidate_movies": ['
        for _ in range(40_000):
            yield b'"A Long Movie Title (1995)",'
        yield b'"x"]}'

    response = api.client.post(RERANK, content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "body_too_large")


# --- title search and unknown routes ------------------------------------------------------


def test_movie_search(api: ApiServer):
    body = api.client.get("/movies", params={"title": "chasing amy"}).json()
    assert [(m["movie_id"], m["title"]) for m in body["movies"]] == [
        (246, "Chasing Amy (1997)"),
        (268, "Chasing Amy (1997)"),
    ]
    heat = api.client.get("/movies", params={"title": "heat"}).json()["movies"]
    assert heat[0]["title"] == "Heat (1995)"  # exact match first, then "Heathers", ".. Heat"
    assert len(api.client.get("/movies", params={"title": "the", "limit": 100}).json()["movies"]) == 100


def test_movie_search_orders_exact_then_prefixes_then_other_substrings(api: ApiServer):
    assert api.client.get("/movies", params={"title": "HEAT (1995)"}).json()["movies"][0]["movie_id"] == 273
    for query in ("heat", "star", "love"):
        movies = api.client.get("/movies", params={"title": query, "limit": 100}).json()["movies"]
        groups = [
            0 if m["title"].lower() == query.lower() else 1 if m["title"].lower().startswith(query.lower()) else 2
            for m in movies
        ]
        assert groups == sorted(groups) and len(set(groups)) >= 2, (query, groups)


@pytest.mark.parametrize("title", ["%", "_", "\\", "'", "%' OR 1=1 --"])
def test_movie_search_wildcards_are_literal(api: ApiServer, title: str):
    response = api.client.get("/movies", params={"title": title})
    assert response.status_code == 200
    assert all(title.lower() in m["title"].lower() for m in response.json()["movies"])


@pytest.mark.parametrize(
    "params", [{}, {"title": ""}, {"title": "x" * 301}, {"title": "a\x00"}, {"title": "a", "limit": 0}]
)
def test_movie_search_invalid(api: ApiServer, params: dict):
    assert_error(api.client.get("/movies", params=params), 422, "invalid_request")


def test_unknown_route_and_method_are_json(api: ApiServer):
    assert_error(api.client.get("/nope"), 404, "not_found")
    assert_error(api.client.get(RERANK), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "path", ["/health", "/ready", "/users/17/recommendations?k=3", "/movies?title=heat", "/openapi.json"]
)
def test_head_answers_like_get_without_a_body(api: ApiServer, path: str):
    get, head = api.client.get(path), api.client.head(path)
    assert (head.status_code, get.status_code) == (200, 200)
    assert head.content == b"" and get.content
    for name in ("content-type", "content-length"):
        assert head.headers[name] == get.headers[name]


def test_head_errors_have_no_body_either(api: ApiServer):
    for path, status in [("/users/99999/recommendations", 404), ("/users/x/recommendations", 422), (RERANK, 405)]:
        head = api.client.head(path)
        assert head.status_code == status and head.content == b""
        assert head.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "path, name",
    [
        ("/users/1_7/recommendations", "user_id"),
        ("/users/1.0/recommendations", "user_id"),
        ("/users/17.0/recommendations", "user_id"),
        ("/users/017/recommendations", "user_id"),
        ("/users/+17/recommendations", "user_id"),
        ("/users/%2017/recommendations", "user_id"),
        ("/users/%D9%A1%D9%A7/recommendations", "user_id"),  # Arabic-Indic digits
        ("/users/17/recommendations?k=1_0", "k"),
        ("/users/17/recommendations?k=5.0", "k"),
        ("/movies?title=heat&limit=0_5", "limit"),
    ],
)
def test_integers_in_paths_and_queries_must_be_canonical_digits(api: ApiServer, path: str, name: str):
    body = assert_error(api.client.get(path), 422, "invalid_request")
    assert [e["loc"][-1] for e in body["detail"]] == [name]


@pytest.mark.parametrize("query", ["title=%ff%fe", "title=heat%c3", "title=%ed%a0%80", "title=heat&limit=%ff"])
def test_query_that_is_not_utf8_is_422(api: ApiServer, query: str):
    body = assert_error(api.client.get(f"/movies?{query}"), 422, "invalid_request")
    assert body["detail"][0]["loc"][0] == "query"
    assert api.client.get("/movies?title=am%C3%A9lie").json()["query"] == "amélie"  # valid UTF-8 is fine


# --- hostile input leaves the database untouched ------------------------------------------

HOSTILE_TITLES = [
    "'; DROP TABLE recsys.movies; --",
    "Heat (1995)'); DELETE FROM recsys.ratings; --",
    "1; UPDATE recsys.published_ranking SET run_id = 0",
    '" OR ""="',
    "Robert'); DROP TABLE Students;--",
    "$$; TRUNCATE recsys.users; $$",
    "Amélie 🎬 漢字 \u202e",
    "x" * 300,
]


def test_hostile_requests_change_nothing(api: ApiServer, current_baseline: Published):
    before = db_fingerprint(current_baseline.engine)
    for title in HOSTILE_TITLES:
        body = api.client.post(RERANK, json={"user_id": 17, "candidate_movies": [title, "Heat (1995)"]}).json()
        assert body["unknown_titles"] == [title.strip()] and [r["movie_id"] for r in body["ranked"]] == [273]
        assert api.client.get("/movies", params={"title": title}).status_code == 200
    for user in ["1 OR 1=1", "17; DROP TABLE recsys.users", "17'--"]:
        assert api.client.get(f"/users/{user}/recommendations").status_code == 422
        assert api.client.post(RERANK, json={"user_id": user, "candidate_movie_ids": [1]}).status_code == 422
    huge = ["'; DROP TABLE recsys.movies; --"] * 10_000
    assert api.client.post(RERANK, json={"user_id": 17, "candidate_movies": huge}).status_code in (413, 422)
    assert db_fingerprint(current_baseline.engine) == before


# --- the read-only role ------------------------------------------------------------------


def test_read_only_role_cannot_write_even_if_it_asks(current_baseline: Published):
    # conninfo() keeps a socket host (the managed server's ?host=/dir) as the API itself does
    with psycopg.connect(conninfo(as_role(current_baseline.url)), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM recsys.movies").fetchone() == (1682,)
        conn.execute("SET default_transaction_read_only = off")  # prove the grants, not just the session default
        for statement in [
            "INSERT INTO recsys.movies (movie_id, title) VALUES (99999, 'x')",
            "UPDATE recsys.published_ranking SET model_version = 'x'",
            "DELETE FROM recsys.ratings",
            "TRUNCATE recsys.users",
            "CREATE TABLE recsys.evil (x int)",
            "DROP VIEW recsys.top_recommendations",
            "SELECT * FROM public._yoyo_migration",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        role = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False, False)


def test_analyst_view_top_recommendations(current_baseline: Published):
    engine = sa.create_engine(as_role(current_baseline.url).replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT rank, movie_id, title, model_version FROM recsys.top_recommendations WHERE user_id = 17 AND rank <= 3 ORDER BY rank"
            )
        ).all()
    engine.dispose()
    expected = current_baseline.expected_ranking(17).head(3).movie_id.tolist()
    assert [r.movie_id for r in rows] == expected and [r.rank for r in rows] == [1, 2, 3]
    assert {r.model_version for r in rows} == {current_baseline.version}


# --- rate limit ----------------------------------------------------------------------------


def test_rate_limit_is_429_json(baseline: Published):
    server = ApiServer(as_role(baseline.url), rate_limit="5/second")
    try:
        statuses = [server.client.get("/health").status_code for _ in range(12)]
        assert statuses[0] == 200 and statuses.count(200) <= 5 and statuses[-1] == 429  # startup probe used one
        limited = server.client.get("/health")
        assert_error(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "1"
    finally:
        server.stop()
