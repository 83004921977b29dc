"""plugins/rerank_guard.py in Airflow's real API server: a bad movielens_rerank trigger creates no run.

Why this file as well as tests/test_rerank_guard.py: that one proves the middleware's
answers on a stand-in app; this one proves that Airflow mounts it in front of its own
``POST /api/v2/dags/movielens_rerank/dagRuns`` (issue #13 item 10: ``user_id: 17.0``
passed Airflow's Params check and created a run that failed later). The app is
``airflow.api_fastapi.app.create_app("core")`` with this repo's plugins folder and the
simple auth manager (the pattern of tests/test_plugin.py, copied here in its minimal form),
on a fresh migrated metadata database into which the DAGs are serialised by
``airflow dags reserialize``. No scheduler runs: a created run stays queued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import airflow_env
from recsys.config import PROJECT_ROOT
from recsys.db.admin import create_database, drop_database
from recsys.db.urls import parse

ROOT = PROJECT_ROOT

DAG_ID = "movielens_rerank"
RUNS = f"/api/v2/dags/{DAG_ID}/dagRuns"
LIMIT = 65536
PASSWORD = "guard-test-" + uuid.uuid4().hex[:8]
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
VALID = {"user_id": 17, "candidate_movies": ["Toy Story (1995)", 50], "k": 5}


def _configure_orm() -> None:
    from airflow import settings

    settings.dispose_orm()
    settings.configure_vars()
    settings.configure_orm()


def _airflow(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=os.environ.copy(), capture_output=True, text=True
    )
    assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stderr[-3000:]}"


def _reserialize() -> None:
    """``airflow dags reserialize``, the CLI's own function, in this process (the CLI's start-up
    alone takes ~20 s on this machine). AIRFLOW__CORE__DAGS_FOLDER is dags/ (isolate_for_tests)."""
    from argparse import Namespace

    from airflow.cli.commands.dag_command import dag_reserialize

    dag_reserialize(Namespace(bundle_name=None, verbose=False))


@pytest.fixture(scope="module")
def metadata(admin_url: str) -> Iterator[sa.Engine]:
    """A migrated metadata database holding this repo's serialised DAGs; an engine on it."""
    url = create_database(admin_url, "airflow_test_guard")
    conn = airflow_env.metadata_url(url, parse(url).database)
    saved = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = conn
    engine = sa.create_engine(conn)
    try:
        _airflow("db", "migrate")
        _configure_orm()
        _reserialize()
        with engine.connect() as c:
            serialised = c.execute(sa.text("SELECT count(*) FROM serialized_dag WHERE dag_id = :d"), {"d": DAG_ID})
            assert serialised.scalar_one() == 1, "airflow dags reserialize did not store movielens_rerank"
        yield engine
    finally:
        engine.dispose()
        if saved is None:
            os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
        else:
            os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = saved
        _configure_orm()
        drop_database(admin_url, url)


def _reset_plugins() -> None:
    """Airflow caches discovered plugins per process (tests/test_plugin.py builds apps too)."""
    from airflow import plugins_manager

    for name in dir(plugins_manager):
        fn = getattr(plugins_manager, name)
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()


@pytest.fixture(scope="module")
def client(metadata: sa.Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow's API server app, the limit set before it is built, logged in as admin (JWT)."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    passwords = tmp_path_factory.mktemp("guard-auth") / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSYS_RERANK_MAX_BODY_BYTES", str(LIMIT))
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", SIMPLE_AUTH_MANAGER)
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        mp.setenv("RECSYS_API_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # the lookup API is not used
        mp.delenv("AIRFLOW_CONN_RECSYS_DB", raising=False)
        _reset_plugins()
        purge_cached_app()
        try:
            with TestClient(create_app("core")) as c:
                answer = c.post("/auth/token", json={"username": "admin", "password": PASSWORD})
                assert answer.status_code == 201, answer.text
                c.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
                yield c
        finally:
            _reset_plugins()
            purge_cached_app()


def runs(engine: sa.Engine) -> list[tuple[str, Any]]:
    """The rerank DAG's runs in the metadata database: (run_id, conf)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT run_id, conf FROM dag_run WHERE dag_id = :d ORDER BY id"), {"d": DAG_ID})
        return [(run_id, conf) for run_id, conf in rows]


def test_a_valid_conf_creates_a_run(client, metadata: sa.Engine) -> None:
    before = runs(metadata)
    answer = client.post(RUNS, json={"logical_date": None, "conf": VALID})
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["dag_run_id"]
    created = [run for run in runs(metadata) if run not in before]
    assert [r for r, _ in created] == [run_id]
    listed = client.get(RUNS)
    assert listed.status_code == 200, listed.text
    assert run_id in {r["dag_run_id"] for r in listed.json()["dag_runs"]}
    assert next(r for r in listed.json()["dag_runs"] if r["dag_run_id"] == run_id)["conf"] == VALID


def test_a_float_user_id_gets_400_with_one_reason_and_no_run(client, metadata: sa.Engine) -> None:
    before = runs(metadata)
    answer = client.post(RUNS, json={"logical_date": None, "conf": {**VALID, "user_id": 17.0}})
    assert runs(metadata) == before, "a run was created for user_id 17.0"
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail.startswith("invalid rerank request: ")
    assert "user_id" in detail and "\n" not in detail and len(detail) < 200


def test_a_body_over_the_limit_gets_413_and_no_run(client, metadata: sa.Engine) -> None:
    """The conf itself is valid to Airflow's Params (300 titles of 250 characters): only its size is refused."""
    titles = [f"{i:03d} " + "x" * 246 for i in range(300)]
    body = json.dumps({"logical_date": None, "conf": {"user_id": 17, "candidate_movies": titles}}).encode()
    assert len(body) > LIMIT
    before = runs(metadata)
    answer = client.post(RUNS, content=body, headers={"Content-Type": "application/json"})
    assert runs(metadata) == before, "a run was created for a body over the limit"
    assert answer.status_code == 413, answer.text
    assert answer.json() == {"detail": f"request body over {LIMIT} bytes"}
