"""Faults around the API: a database that goes down and comes back, locks, an empty
database, and a new ranking published while the API is under load.

The outage tests run their own PostgreSQL cluster (``TempPostgres``) so they can stop it;
the machine's server is never stopped.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from recsys.config import Settings
from recsys.data.synthetic import synthetic_members, write_archive
from recsys.db.engine import make_engine
from recsys.db.migrate import migrate
from recsys.ingest import ingest
from tests.support.api import ApiServer, Published, publish_expected
from tests.support.db import as_role
from tests.support.postgres import TempPostgres

RERANK = "/recommendation/ranked_recommendation"
OUTAGE_LIMIT_S = 6.0  # connect 2 s + pool wait 1 s + a statement, with margin for a loaded machine


@pytest.fixture(scope="module")
def private_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TempPostgres]:
    server = TempPostgres()
    try:
        url = make_url(server.url).set(database="recsys").render_as_string(hide_password=False)
        with make_engine(server.url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(sa.text("CREATE DATABASE recsys"))
        migrate(url)
        archive = write_archive(tmp_path_factory.mktemp("archive") / "ml-tiny.zip", synthetic_members(40, 60, 15))
        ingest(Settings(data_sha256="", home=Path(archive).parent), url, source=str(archive))
        publish_expected(url, "outage-baseline").engine.dispose()
        server.recsys_url = url  # type: ignore[attr-defined]
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def outage_api(private_pg: TempPostgres) -> Iterator[ApiServer]:
    server = ApiServer(
        as_role(private_pg.recsys_url),  # type: ignore[attr-defined]
        statement_timeout_ms="500",
        pool_timeout_s="1",
        connect_timeout_s="2",
    )
    yield server
    assert "Traceback" not in server.output(), server.output()
    server.stop()


def _requests(client: httpx.Client, rng: random.Random) -> httpx.Response:
    user = rng.randint(1, 40)
    if rng.random() < 0.5:
        return client.get(f"/users/{user}/recommendations?k=5")
    return client.post(RERANK, json={"user_id": user, "candidate_movie_ids": rng.sample(range(1, 61), 10)})


class Hammer:
    """Client threads sending requests until stopped; records (time, status, seconds, body)."""

    def __init__(self, base: str, threads: int = 4, request=_requests) -> None:
        self.base, self.request = base, request
        self.records: list[tuple[float, int, float, dict | None]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base, timeout=30.0) as client:
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    response = self.request(client, rng)
                    status, body = response.status_code, response.json()
                except httpx.HTTPError:
                    status, body = -1, None
                self.records.append((started, status, time.monotonic() - started, body))

    def stop(self) -> list[tuple[float, int, float, dict | None]]:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)
        return self.records


def test_database_restart_under_load_gives_503_then_recovers(private_pg: TempPostgres, outage_api: ApiServer):
    client = outage_api.client
    assert client.get("/ready").status_code == 200
    hammer = Hammer(outage_api.base)
    time.sleep(1.0)
    private_pg.stop()
    down_at = time.monotonic()
    time.sleep(3.0)
    during = [
        client.get("/users/1/recommendations"),
        client.post(RERANK, json={"user_id": 1, "candidate_movie_ids": [1]}),
    ]
    ready_down = client.get("/ready")
    health_down = client.get("/health")
    private_pg.start()
    up_at = time.monotonic()
    recovered_at = None
    while time.monotonic() - up_at < 20:
        if client.get("/users/1/recommendations").status_code == 200:
            recovered_at = time.monotonic()
            break
        time.sleep(0.1)
    time.sleep(1.0)
    records = hammer.stop()

    statuses = Counter(status for _, status, _, _ in records)
    print(f"\nunder load: {dict(statuses)}; slowest {max(r[2] for r in records):.2f} s; "
          f"recovered {recovered_at - up_at if recovered_at else None} s after the restart")  # fmt: skip
    assert set(statuses) <= {200, 503}, statuses  # never a 500, never a dropped connection
    assert statuses[503] > 0 and statuses[200] > 0
    assert max(seconds for _, _, seconds, _ in records) < OUTAGE_LIMIT_S  # never a hang
    for response in (*during, ready_down):
        assert response.status_code == 503 and response.json()["error"] == "unavailable"
        assert response.headers["retry-after"]
    assert health_down.status_code == 200  # liveness does not depend on the database
    assert recovered_at is not None and recovered_at - up_at < 10, "did not recover without a restart"
    late = [status for started, status, _, _ in records if started > recovered_at + 0.5]
    assert late and set(late) == {200}
    assert all(status == 503 for started, status, _, _ in records if down_at + 0.5 < started < up_at - 0.5)


def test_lock_or_slow_query_times_out_as_503(private_pg: TempPostgres, outage_api: ApiServer):
    engine = make_engine(private_pg.recsys_url)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        conn.execute(sa.text("LOCK TABLE recsys.published_ranking IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        response = outage_api.client.get("/users/1/recommendations")
        elapsed = time.monotonic() - started
        conn.rollback()
    engine.dispose()
    assert response.status_code == 503 and response.json()["detail"] == "the database did not answer in time"
    assert elapsed < 3.0
    assert outage_api.client.get("/users/1/recommendations").status_code == 200


def test_wrong_database_settings_are_503_not_500(private_pg: TempPostgres):
    url = make_url(as_role(private_pg.recsys_url)).set(database="no_such_db")  # type: ignore[attr-defined]
    url = url.render_as_string(hide_password=False)
    server = ApiServer(url, pool_timeout_s="1", connect_timeout_s="2")
    try:
        assert server.client.get("/health").status_code == 200
        response = server.client.get("/users/1/recommendations")
        assert response.status_code == 503 and response.json()["error"] == "unavailable"
    finally:
        server.stop()


def test_nothing_published_yet_is_503(empty_db_url: str):
    server = ApiServer(as_role(empty_db_url))
    try:
        for response in (
            server.client.get("/ready"),
            server.client.get("/users/1/recommendations"),
            server.client.post(RERANK, json={"user_id": 1, "candidate_movie_ids": [1]}),
        ):
            assert response.status_code == 503
            assert "no ranking has been published" in response.json()["detail"]
        assert server.client.get("/movies", params={"title": "x"}).json()["movies"] == []
    finally:
        server.stop()


def _expected_top10(published: Published, users: list[int]) -> dict[int, list[int]]:
    return {u: published.expected_ranking(u).head(10).movie_id.tolist() for u in users}


def test_publish_under_load_is_atomic_for_every_response(current_baseline: Published, api: ApiServer):
    users = list(range(1, 31))
    candidates = [1, 2, 50, 100, 181, 246, 268, 273, 300, 500]

    def request(client: httpx.Client, rng: random.Random) -> httpx.Response:
        user = rng.choice(users)
        if rng.random() < 0.5:
            return client.get(f"/users/{user}/recommendations?k=10")
        return client.post(RERANK, json={"user_id": user, "candidate_movie_ids": candidates})

    old = current_baseline
    hammer = Hammer(api.base, threads=4, request=request)
    time.sleep(1.0)
    new = publish_expected(old.url, "api-test-baseline-v2", movie_damping=2.0)
    time.sleep(1.5)
    records = hammer.stop()

    expected = {old.version: _expected_top10(old, users), new.version: _expected_top10(new, users)}
    published = {old.version: old, new.version: new}
    versions = Counter()
    for _, status, _, body in records:
        assert status == 200, body
        version = body["model_version"]
        versions[version] += 1
        assert body["run_id"] == published[version].run_id  # version and run always agree
        user = body["user_id"]
        if "recommendations" in body:
            assert [r["movie_id"] for r in body["recommendations"]] == expected[version][user]
        else:
            assert len(body["ranked"]) == len(candidates)
            for r in body["ranked"]:
                assert np.float32(r["score"]) == published[version].score(user, r["movie_id"])
                assert np.float32(r["predicted_rating"]) == published[version].rating(user, r["movie_id"])
            assert [r["movie_id"] for r in body["ranked"]] == published[version].expected_rerank(user, candidates)
    print(f"\n{len(records)} responses during the publish: {dict(versions)}")
    assert versions[old.version] > 0 and versions[new.version] > 0
