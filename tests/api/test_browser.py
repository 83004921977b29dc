"""The OpenAPI docs pages in a real headless browser (Debian's chromium via Playwright), offline.

Every request that leaves the loopback range is aborted, so a page that still loads
Swagger UI from a CDN stays blank here and the test fails, as it did for users without
internet. Checked for the API as ``recsys serve`` runs it and for the plugin's "Lookup API
docs" inside Airflow's API server. Screenshots are written to the test's tmp_path.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.engine import make_url

import airflow_env
from recsys.config import PROJECT_ROOT
from recsys.db.admin import create_database, drop_database
from tests.support.api import ApiServer
from tests.support.db import as_role
from tests.support.net import free_port

CHROMIUM = Path(os.environ.get("RECSYS_TEST_CHROMIUM", "/usr/bin/chromium"))
OPERATION = '.opblock-post .opblock-summary-path[data-path="/recommendation/ranked_recommendation"]'


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: `make test` installs Debian's (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))  # Playwright adds --no-sandbox (root here)
        yield browser
        browser.close()


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def render_docs(browser, url: str, screenshot: Path, headers: dict[str, str] | None = None) -> list[str]:
    """Open ``url`` with the internet cut off, wait for the operations; return what was blocked."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, extra_http_headers=headers or {})
    blocked: list[str] = []
    errors: list[str] = []

    def only_loopback(route) -> None:
        if is_loopback(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        assert page.goto(url).status == 200
        try:
            page.locator(OPERATION).wait_for(state="visible", timeout=20_000)
        except Exception as exc:
            page.screenshot(path=str(screenshot), full_page=True)
            raise AssertionError(
                f"Swagger UI did not render POST /recommendation/ranked_recommendation at {url} "
                f"(blocked: {blocked}, page errors: {errors}; screenshot {screenshot})"
            ) from exc
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshot), full_page=True)
        assert page.locator(".opblock").count() >= 5, "every operation is listed"
        assert "movielens-ranker lookup API" in page.locator(".info .title").inner_text()
    finally:
        context.close()
    assert errors == []
    return blocked


def test_api_docs_render_offline(browser, migrated: str, tmp_path: Path) -> None:
    server = ApiServer(as_role(migrated))
    try:
        blocked = render_docs(browser, f"{server.base}/docs", tmp_path / "api-docs.png")
    finally:
        server.stop()
    assert blocked == [], "the docs page asked the internet for something"


AIRFLOW_API_SERVER = [sys.executable, "-m", "uvicorn", "airflow.api_fastapi.main:app", "--log-level", "warning"]


@pytest.fixture(scope="module")
def airflow_metadata(admin_url: str) -> Iterator[str]:
    """A migrated Airflow metadata database: the plugin's login check reads its revoked tokens."""
    url = create_database(admin_url, "airflow_test_browser")
    metadata = airflow_env.metadata_url(url, make_url(url).database)
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata}
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    yield metadata
    drop_database(admin_url, url)


@pytest.fixture
def airflow_api_server(migrated: str, airflow_metadata: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Airflow's API server app, the entry point ``airflow api-server`` runs, with this repo's
    plugins and the simple auth manager; yields its address and a login token (the plugin's
    pages need an Airflow login, as a user's browser session has).
    """
    port = free_port()
    password = secrets.token_hex(8)
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": password}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_API_"))}
    env |= {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_metadata,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "RECSYS_API_DATABASE_URL": as_role(migrated),
    }
    log = tempfile.NamedTemporaryFile(prefix="airflow-api-", suffix=".log", delete=False)  # noqa: SIM115
    cmd = [*AIRFLOW_API_SERVER, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # Airflow's app takes ~15 s to import and build on 2 cores
        while True:
            assert proc.poll() is None, Path(log.name).read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "Airflow's API server did not answer in 90 s"
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        answer = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert answer.status_code == 201, answer.text
        yield base, answer.json()["access_token"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


def test_plugin_lookup_api_docs_render_offline_inside_airflow(browser, airflow_api_server, tmp_path: Path) -> None:
    base, token = airflow_api_server
    login = {"Authorization": f"Bearer {token}"}
    blocked = render_docs(browser, f"{base}/recsys-api/docs", tmp_path / "plugin-docs.png", login)
    assert blocked == [], "the docs page asked the internet for something"
