"""The lookup API tests' published baseline and server (fixtures: tests/conftest.py, tests/api/conftest.py).

- ``publish_expected``: the session database (conftest ``db_url``, real ML-100K) with a real model
  published: the damped user+movie bias baseline, fitted in pandas, gives the predicted
  rating, and a stand-in list head gives the ranking score (the rating blended with the
  movie's popularity, so the score order differs from the rating order, as it does for
  the TFRS champion). Every test can recompute the exact scores, ratings and ranks.
- ``ApiServer``: the API in a uvicorn subprocess on a free loopback port, reached over real
  HTTP, connecting as the read-only ``recsys_api`` role.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys.api.baseline import baseline_scores, register_model_version
from recsys.config import PROJECT_ROOT
from recsys.db.engine import make_engine
from recsys.scoring.from_frame import publish_scores
from tests.support.net import free_port

BASELINE_VERSION = "api-test-baseline-v1"


@dataclass
class Published:
    url: str
    engine: sa.Engine
    run_id: int
    version: str
    scores: pd.DataFrame  # user_id, movie_id, score, predicted_rating (float32) of the published model, user-major
    seen: set[tuple[int, int]]

    def __post_init__(self) -> None:
        self.user_ids = np.unique(self.scores.user_id.to_numpy())
        self.movie_ids = np.unique(self.scores.movie_id.to_numpy())
        shape = (len(self.user_ids), len(self.movie_ids))
        self.grid = self.scores.score.to_numpy(np.float32).reshape(shape)
        self.rating_grid = self.scores.predicted_rating.to_numpy(np.float32).reshape(shape)

    def expected_ranking(self, user_id: int) -> pd.DataFrame:
        """The user's unseen movies in the order the published ranking must have them (by score)."""
        row = np.searchsorted(self.user_ids, user_id)
        mine = pd.DataFrame(
            {"movie_id": self.movie_ids, "score": self.grid[row], "predicted_rating": self.rating_grid[row]}
        )
        unseen = mine[[(user_id, m) not in self.seen for m in self.movie_ids]]
        return unseen.assign(neg=-unseen.score.astype(np.float64)).sort_values(["neg", "movie_id"]).drop(columns="neg")

    def expected_rerank(self, user_id: int, movie_ids: list[int]) -> list[int]:
        """The published order of these movies: unseen by rank, then seen by score (ties by id)."""
        ranked = self.expected_ranking(user_id).movie_id.tolist()
        position = {m: i for i, m in enumerate(ranked)}
        unseen = sorted((m for m in movie_ids if m in position), key=position.__getitem__)
        seen = sorted((m for m in movie_ids if m not in position), key=lambda m: (-float(self.score(user_id, m)), m))
        return unseen + seen

    def score(self, user_id: int, movie_id: int) -> np.float32:
        return self.grid[np.searchsorted(self.user_ids, user_id), np.searchsorted(self.movie_ids, movie_id)]

    def rating(self, user_id: int, movie_id: int) -> np.float32:
        return self.rating_grid[np.searchsorted(self.user_ids, user_id), np.searchsorted(self.movie_ids, movie_id)]


def two_number_ranking(conn: sa.Connection, movie_damping: float = 25.0) -> pd.DataFrame:
    """user_id, movie_id, score, predicted_rating: the baseline's rating and a stand-in list head.

    The ranking score is ``4 * (rating - 3.5) + 1.5 * ln(1 + ratings of the movie) - 6``: not
    a rating (about -16..+10, any sign), and its order differs from the rating's, because
    popular movies move up, as a head trained for top-N moves them.
    """
    frame = baseline_scores(conn, movie_damping=movie_damping)
    counts = pd.read_sql(sa.text("SELECT movie_id, count(*) AS n FROM recsys.ratings GROUP BY movie_id"), conn)
    popularity = frame.movie_id.map(counts.set_index("movie_id").n).fillna(0).to_numpy(np.float64)
    rating = frame.predicted_rating.to_numpy(np.float64)
    score = 4.0 * (rating - 3.5) + 1.5 * np.log1p(popularity) - 6.0
    return frame.assign(score=score.astype(np.float32))


def publish_expected(url: str, version: str, movie_damping: float = 25.0) -> Published:
    """Publish the two-number baseline as ``version`` (a challenger) and return what tests should see."""
    engine = make_engine(url)
    with engine.begin() as conn:
        scores = two_number_ranking(conn, movie_damping=movie_damping)
        config = {"movie_damping": movie_damping, "score": "stand-in list head: rating + popularity"}
        register_model_version(conn, version, config, champion=False)
        rated = conn.execute(sa.text("SELECT user_id, movie_id FROM recsys.ratings")).all()
    run_id = publish_scores(engine, version, scores)
    published = Published(url, engine, run_id, version, scores, {(u, m) for u, m in rated})
    KNOWN_RUNS[(url, run_id)] = published
    return published


KNOWN_RUNS: dict[tuple[str, int], Published] = {}  # every run these tests published, to reuse


def current_published(baseline: Published) -> Published:
    """What is published now, as long as these tests published it (a baseline variant whose
    scores they know); republished only if something else was published in between."""
    with baseline.engine.connect() as conn:
        run_id = conn.execute(sa.text("SELECT run_id FROM recsys.published_ranking")).scalar()
    if (baseline.url, run_id) not in KNOWN_RUNS:
        publish_expected(baseline.url, baseline.version)
        run_id = max(r for u, r in KNOWN_RUNS if u == baseline.url)
    return KNOWN_RUNS[(baseline.url, run_id)]


class ApiServer:
    """``recsys serve`` (uvicorn, one worker) in a subprocess, reached over real HTTP."""

    def __init__(self, database_url: str, **settings: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_API_")}
        env.update({"RECSYS_API_DATABASE_URL": database_url, "RECSYS_API_RATE_LIMIT": "100000/second"})
        env.update({f"RECSYS_API_{k.upper()}": v for k, v in settings.items()})
        self.log = tempfile.NamedTemporaryFile(prefix="recsys-api-", suffix=".log", delete=False)  # noqa: SIM115
        cmd = [sys.executable, "-m", "recsys.api.commands", "serve"]  # what `recsys serve` runs
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.base, timeout=15.0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited at startup:\n{self.output()}")
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"API did not start in 30 s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)
