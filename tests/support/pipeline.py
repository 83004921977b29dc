"""A data set through what a user runs: ``recsys`` subcommands in subprocesses, then the API's top-N over HTTP.

Shared by the end-to-end data tests (tests/data/test_real_csv.py: real ml-latest-small;
tests/data/test_own_csv.py: a plain-CSV archive of one's own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from recsys.db.engine import make_engine
from tests.support.api import ApiServer
from tests.support.db import as_role

RECSYS = [sys.executable, "-m", "recsys.cli"]


def recsys_env(db_url: str, dataset: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a ``recsys`` subprocess on ``db_url``, reading ``dataset``, state under ``tmp_path``."""
    return {
        **os.environ,
        "RECSYS_DATABASE_URL": db_url,
        "RECSYS_DATASET": dataset,
        "RECSYS_HOME": str(tmp_path / "home"),
        "RECSYS_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }


def run_recsys(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    """``recsys ARGS``, which must succeed; prints its time (shown with -s: where a test's time goes)."""
    started = time.perf_counter()
    done = subprocess.run(RECSYS + args, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"recsys {args[0]}: {time.perf_counter() - started:.1f} s")
    return done


def champion_metadata(engine: sa.Engine) -> dict:
    """metadata.json of the served model (the champion): its signatures' inputs, its rating scale."""
    with engine.connect() as conn:
        artifact = conn.execute(
            sa.text("SELECT artifact_uri FROM recsys.model_versions WHERE status = 'champion'")
        ).scalar()
    return json.loads((Path(artifact) / "assets.extra/metadata.json").read_text())


def user_tower_inputs(engine: sa.Engine) -> list[str]:
    """The raw inputs the served model's ``user_tower`` takes: ``user_id`` and the user side features it has."""
    return list(champion_metadata(engine)["signatures"]["user_tower"]["inputs"])


def check_top_n_over_http(db_url: str, k: int, low: float, high: float) -> list[dict]:
    """The lowest user id's top-``k`` from the API over HTTP: ranks 1..k, none rated, ratings within ``low``-``high``."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            user = conn.execute(sa.text("SELECT min(user_id) FROM recsys.users")).scalar()
            seen = set(
                conn.execute(sa.text("SELECT movie_id FROM recsys.ratings WHERE user_id = :u"), {"u": user}).scalars()
            )
    finally:
        engine.dispose()
    server = ApiServer(as_role(db_url))
    try:
        answer = server.client.get(f"/users/{user}/recommendations", params={"k": k})
        assert answer.status_code == 200, answer.text
        top = answer.json()
    finally:
        server.stop()
    items = top["recommendations"] if isinstance(top, dict) else top
    assert [item["rank"] for item in items] == list(range(1, k + 1))
    assert not {item["movie_id"] for item in items} & seen  # only movies the user has not rated
    assert all(low <= item["predicted_rating"] <= high for item in items)
    return items
