"""plugins/rerank_guard.py over real HTTP: a minimal FastAPI app with the same middleware, served by uvicorn.

Why not Airflow's own API app: creating runs there needs a migrated metadata database and an
auth token per request; the middleware sees only the ASGI scope and body, so a stand-in
``POST /api/v2/dags/movielens_rerank/dagRuns`` that records each request it receives shows
exactly what reaches Airflow (a request it never receives creates no run).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from rerank_guard import GUARDED_PATH, RerankGuard, RerankGuardPlugin

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list]]:
    received: list = []
    app = FastAPI()

    @app.post(GUARDED_PATH)
    async def trigger(request: Request) -> dict:
        received.append(await request.body())
        return {"created": True}

    @app.post("/api/v2/dags/other/dagRuns")
    async def other(request: Request) -> dict:
        received.append(await request.body())
        return {"created": True}

    app.add_middleware(RerankGuard, max_body_bytes=LIMIT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", received
    srv.should_exit = True
    thread.join(10)


def trigger(base: str, conf: object, **kwargs) -> httpx.Response:
    return httpx.post(base + GUARDED_PATH, json={"logical_date": None, "conf": conf}, timeout=30, **kwargs)


def test_the_plugin_registers_the_middleware() -> None:
    assert RerankGuardPlugin.fastapi_root_middlewares == [{"name": "movielens_rerank guard", "middleware": RerankGuard}]


def test_a_valid_conf_reaches_airflow_with_its_body_intact(server) -> None:
    base, received = server
    conf = {"user_id": 42, "candidate_movies": ["Star Wars (1977)", 50], "k": 5}
    before = len(received)
    response = trigger(base, conf)
    assert response.status_code == 200 and response.json() == {"created": True}
    assert json.loads(received[before]) == {"logical_date": None, "conf": conf}


@pytest.mark.parametrize(
    ("conf", "reason"),
    [
        pytest.param(
            {"user_id": 17.0, "candidate_movies": [1]}, "user_id: user_id must be an integer", id="float-user"
        ),
        pytest.param(
            {"user_id": 17, "candidate_movies": list(range(1, 1002))},
            "candidate_movies: List should have at most 1000 items after validation, not 1001",
            id="1001-candidates",
        ),
        pytest.param(
            {"user_id": 17, "candidate_movies": [1.5] * 500}, "candidate_movies[0]: must be a title", id="floats"
        ),
        pytest.param({"user_id": 17, "candidate_movies": [1], "k": 0}, "k: Input should be greater", id="k-zero"),
        pytest.param({"user_id": 17, "candidate_movies": [1], "K": 2}, "unknown conf key(s): K", id="typo-key"),
        pytest.param([1, 2], "conf must be a JSON object", id="not-an-object"),
    ],
)
def test_an_invalid_conf_is_400_with_one_short_reason_and_never_reaches_airflow(server, conf, reason) -> None:
    base, received = server
    before = len(received)
    response = trigger(base, conf)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("invalid rerank request: " + reason), detail
    assert len(response.content) < 400  # never the list
    assert len(received) == before


def test_a_body_over_the_limit_is_413_from_content_length(server) -> None:
    base, received = server
    before = len(received)
    started = time.monotonic()
    response = trigger(base, {"user_id": 17, "candidate_movies": list(range(1, 1_000_001))})  # 6.9 MB
    assert response.status_code == 413 and "over 65536 bytes" in response.json()["detail"]
    assert time.monotonic() - started < 10 and len(received) == before


def test_a_streamed_body_over_the_limit_is_413(server) -> None:
    base, received = server
    before = len(received)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'{"conf": {"user_id": 17, "candidate_movies": ['
        for _ in range(200):
            yield b"1," * 500
        yield b"1]}}"

    response = httpx.post(
        base + GUARDED_PATH, content=chunks(), headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 413 and len(received) == before


def test_other_paths_pass_untouched(server) -> None:
    base, received = server
    before = len(received)
    response = httpx.post(base + "/api/v2/dags/other/dagRuns", json={"conf": {"user_id": 17.0}}, timeout=30)
    assert response.status_code == 200 and len(received) == before + 1
