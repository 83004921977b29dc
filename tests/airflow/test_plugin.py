"""The Airflow plugin: discovered by Airflow, mounted in the real Airflow API server app, useful, and safe.

Why the real ``airflow.api_fastapi.app.create_app``: mounting, URL prefixes and the
sub-apps' lifespans are Airflow's job; a test against a hand-made parent app would pass
even if Airflow refused the plugin.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

import airflow_env
from recsys.config import PROJECT_ROOT
from recsys.db.admin import create_database, drop_database
from recsys.db.engine import make_engine
from recsys.status import read_status

ROOT = PROJECT_ROOT

VERSION = f"baseline-plugin-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def recsys_db(admin_url: str, tmp_path_factory) -> Iterator[str]:
    """A fresh database with a synthetic data set, a champion and a published ranking."""

    from recsys.api.baseline import publish_baseline
    from recsys.config import Settings
    from recsys.data.synthetic import synthetic_members, write_archive
    from recsys.ingest import ingest

    url = create_database(admin_url, "recsys_test_plugin")
    home = tmp_path_factory.mktemp("plugin-home")
    archive = write_archive(home / "ml-100k.zip", synthetic_members(n_users=12, n_movies=20, per_user=8))
    ingest(Settings(home=home, data_sha256="", download_retries=1), url, source=str(archive))
    engine = make_engine(url)
    publish_baseline(engine, VERSION)
    engine.dispose()
    yield url
    drop_database(admin_url, url)


PASSWORD = "plugin-test-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def airflow_metadata(admin_url: str) -> Iterator[str]:
    """A migrated Airflow metadata database: token checks read ``revoked_token`` from it."""
    import os
    import subprocess

    from sqlalchemy.engine import make_url

    url = create_database(admin_url, "airflow_test_plugin")
    metadata = airflow_env.metadata_url(url, make_url(url).database)
    saved = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _configure_orm()
    yield metadata
    if saved is None:
        os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    else:
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = saved
    _configure_orm()  # back to the session's metadata database, if another module set one
    drop_database(admin_url, url)


def _configure_orm() -> None:
    from airflow import settings

    settings.dispose_orm()
    settings.configure_vars()
    settings.configure_orm()


@contextmanager
def served(monkeypatch, tmp_path: Path, database_url: str) -> Iterator:
    """Airflow's own API server app, with this repo's plugins folder and the simple auth manager
    (user ``admin``, a password file in tmp_path), as a test client without credentials."""
    import json

    from fastapi.testclient import TestClient

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", SIMPLE_AUTH_MANAGER)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("RECSYS_API_DATABASE_URL", database_url)
    monkeypatch.delenv("AIRFLOW_CONN_RECSYS_DB", raising=False)
    from airflow import plugins_manager
    from airflow.api_fastapi.app import create_app, purge_cached_app

    _reset_plugins(plugins_manager)
    purge_cached_app()
    try:
        with TestClient(create_app("core")) as c:
            yield c
    finally:
        _reset_plugins(plugins_manager)
        purge_cached_app()


@pytest.fixture
def anonymous(recsys_db: str, airflow_metadata: str, monkeypatch, tmp_path):
    with served(monkeypatch, tmp_path, recsys_db) as c:
        yield c


@pytest.fixture
def client(anonymous):
    """The same client, logged in as Airflow's admin with a JWT from ``POST /auth/token``."""
    anonymous.headers["Authorization"] = f"Bearer {token(anonymous)}"
    return anonymous


SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
PLUGIN_ROUTES = ["/recsys-status/status", "/recsys-status/", "/recsys-api/users/1/recommendations", "/recsys-api/docs"]


def token(client) -> str:
    answer = client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return answer.json()["access_token"]


def _reset_plugins(plugins_manager) -> None:
    """Airflow caches discovered plugins (and the plugin module's apps) per process."""
    for name in dir(plugins_manager):
        fn = getattr(plugins_manager, name)
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()
    for mod in [m for m in sys.modules if m == "recsys_plugin" or m.endswith(".recsys_plugin")]:
        del sys.modules[mod]


def test_airflow_discovers_the_plugin() -> None:
    from airflow import plugins_manager

    _reset_plugins(plugins_manager)
    plugins, import_errors = plugins_manager._get_plugins()
    assert import_errors == {}
    plugin = next(p for p in plugins if p.name == "recsys")
    assert {a["url_prefix"] for a in plugin.fastapi_apps} == {"/recsys-api", "/recsys-status"}
    views = {v["name"]: v for v in plugin.external_views}
    assert views["Recsys status"]["href"] == "/recsys-status/"
    assert views["Lookup API docs"]["href"] == "/recsys-api/docs"
    assert all(v["destination"] == "nav" and v["category"] == "browse" for v in views.values())


def test_plugin_module_imports_nothing_heavy() -> None:
    """Every Airflow component imports plugins: no recsys, TensorFlow or pandas at import time."""
    import subprocess

    # A fresh interpreter (what this test process imported does not count) with only the plugins
    # folder added to sys.path, as Airflow's plugin manager adds it; not pytest's pythonpath.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import airflow.plugins_manager, fastapi; "
        "before = set(sys.modules); import recsys_plugin; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} & {'recsys', 'tensorflow', 'pandas'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "plugins")], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_status_page_shows_champion_and_published_run(client, recsys_db: str) -> None:
    status = client.get("/recsys-status/status")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["champion"]["version_id"] == VERSION
    assert body["published"]["model_version"] == VERSION
    assert body["published"]["rows"] == 12 * 20
    assert body["precompute_runs"][0]["status"] == "published"
    page = client.get("/recsys-status/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert VERSION in page.text and "Served now" in page.text


def test_lookup_api_is_mounted_with_docs(client) -> None:
    assert client.get("/recsys-api/health").status_code == 200
    top = client.get("/recsys-api/users/1/recommendations", params={"k": 3})
    assert top.status_code == 200, top.text
    assert len(top.json()["recommendations"]) == 3 and top.json()["model_version"] == VERSION
    docs = client.get("/recsys-api/docs")
    assert docs.status_code == 200 and "/recsys-api/openapi.json" in docs.text
    assert client.get("/recsys-api/openapi.json").json()["info"]["title"].startswith("movielens-ranker")


@pytest.mark.parametrize("path", PLUGIN_ROUTES)
def test_plugin_routes_need_an_airflow_login(anonymous, path: str) -> None:
    """Issue #13 item 4: both apps answered anyone who could reach the port."""
    refused = anonymous.get(path)
    assert refused.status_code == 401, refused.text
    assert "recommendations" not in refused.text and "champion" not in refused.text
    forged = anonymous.get(path, headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.status_code == 403, forged.text
    anonymous.cookies.set("_token", token(anonymous))  # the UI's session cookie, as a browser sends it
    assert anonymous.get(path).status_code == 200


def test_plugin_reads_as_the_read_only_api_role(recsys_db: str, monkeypatch) -> None:
    """With only ``recsys_db`` (the tasks' writer, here the superuser) the plugin connects as recsys_api."""
    import recsys_plugin

    monkeypatch.delenv("RECSYS_API_DATABASE_URL", raising=False)
    monkeypatch.delenv("RECSYS_API_DB_ROLE", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_RECSYS_DB", airflow_env.connection_uri(recsys_db))
    url = recsys_plugin.recsys_read_url()
    assert url is not None and sa.engine.make_url(url).username == "recsys_api"
    engine = recsys_plugin.read_only_engine(url)
    try:
        with engine.connect() as conn:
            role = conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar_one()
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "recsys_api" and role is False
        assert read_status(engine)["champion"]["version_id"] == VERSION
    finally:
        engine.dispose()


def test_status_degrades_to_503_when_the_database_is_down(airflow_metadata, monkeypatch, tmp_path) -> None:
    with served(monkeypatch, tmp_path, "postgresql://nobody@127.0.0.1:1/none") as c:
        c.headers["Authorization"] = f"Bearer {token(c)}"
        r = c.get("/recsys-status/status")
        assert r.status_code == 503 and "unavailable" in r.json()["detail"]
        assert c.get("/recsys-status/").status_code == 503


def test_lookup_api_degrades_to_503_when_recsys_api_is_missing(airflow_metadata, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "recsys.api.main", None)  # import fails as if not installed
    with served(monkeypatch, tmp_path, "postgresql://nobody@127.0.0.1:1/none") as c:
        c.headers["Authorization"] = f"Bearer {token(c)}"
        r = c.get("/recsys-api/users/1/recommendations")
    assert r.status_code == 503 and "not installed" in r.json()["detail"]


def test_status_sessions_cannot_write(recsys_db: str) -> None:
    import recsys_plugin

    engine = recsys_plugin.read_only_engine(recsys_db)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="read-only"), engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM recsys.published_ranking"))
    finally:
        engine.dispose()
