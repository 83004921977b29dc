"""The Airflow plugin: discovered by Airflow, mounted in the real Airflow API server app, useful, and safe.

Why the real ``airflow.api_fastapi.app.create_app``: mounting, URL prefixes and the
sub-apps' lifespans are Airflow's job; a test against a hand-made parent app would pass
even if Airflow refused the plugin.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "plugins"))
import airflow_env  # noqa: E402

airflow_env.isolate_for_tests()  # before anything imports airflow

from recsys.db.admin import create_database, drop_database  # noqa: E402
from recsys.db.engine import make_engine  # noqa: E402

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


@pytest.fixture
def client(recsys_db: str, monkeypatch):
    """Airflow's own API server app, with this repo's plugins folder, as a test client."""
    from fastapi.testclient import TestClient

    monkeypatch.setenv("RECSYS_API_DATABASE_URL", recsys_db)
    monkeypatch.delenv("AIRFLOW_CONN_RECSYS_DB", raising=False)
    from airflow import plugins_manager
    from airflow.api_fastapi.app import create_app

    _reset_plugins(plugins_manager)
    app = create_app("core")
    with TestClient(app) as c:
        yield c
    _reset_plugins(plugins_manager)


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


def test_status_degrades_to_503_when_the_database_is_down(monkeypatch) -> None:
    import recsys_plugin
    from fastapi.testclient import TestClient

    monkeypatch.setenv("RECSYS_API_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    with TestClient(recsys_plugin.make_status_app()) as c:
        r = c.get("/status")
        assert r.status_code == 503 and "unavailable" in r.json()["detail"]
        assert c.get("/").status_code == 503


def test_lookup_api_degrades_to_503_when_recsys_api_is_missing(monkeypatch) -> None:
    import recsys_plugin
    from fastapi.testclient import TestClient

    monkeypatch.setitem(sys.modules, "recsys.api.main", None)  # import fails as if not installed
    with TestClient(recsys_plugin.make_lookup_shell()) as c:
        r = c.get("/users/1/recommendations")
    assert r.status_code == 503 and "not installed" in r.json()["detail"]


def test_status_sessions_cannot_write(recsys_db: str) -> None:
    import recsys_plugin

    engine = recsys_plugin.read_only_engine(recsys_db)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="read-only"), engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM recsys.published_ranking"))
    finally:
        engine.dispose()
