"""The OpenAPI docs pages in a real headless browser (Debian's chromium via Playwright), offline.

Every request that leaves the loopback range is aborted, so a page that still loads
Swagger UI from a CDN stays blank here and the test fails, as it did for users without
internet. Checked for the API as ``recsys serve`` runs it and for the plugin's "Lookup API
docs" inside Airflow's API server. Screenshots are written to the test's tmp_path.
"""

from __future__ import annotations

import ipaddress
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
from test_api_support import ApiServer, as_role, free_port

from recsys.config import PROJECT_ROOT
from recsys.db.admin import create_database, drop_database
from recsys.db.migrate import migrate

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


@pytest.fixture(scope="module")
def migrated(admin_url: str) -> Iterator[str]:
    url = create_database(admin_url, "recsys_test_browser")
    migrate(url)
    yield url
    drop_database(admin_url, url)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def render_docs(browser, url: str, screenshot: Path) -> list[str]:
    """Open ``url`` with the internet cut off, wait for the operations; return what was blocked."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
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


@pytest.fixture
def airflow_api_server(migrated: str, tmp_path: Path) -> Iterator[str]:
    """Airflow's API server app, the entry point ``airflow api-server`` runs, with this repo's plugins.

    Started with uvicorn directly: the CLI would first require a migrated metadata database,
    which the plugin does not use.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_API_"))}
    env |= {
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
                if httpx.get(f"{base}/recsys-api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


def test_plugin_lookup_api_docs_render_offline_inside_airflow(browser, airflow_api_server: str, tmp_path: Path) -> None:
    blocked = render_docs(browser, f"{airflow_api_server}/recsys-api/docs", tmp_path / "plugin-docs.png")
    assert blocked == [], "the docs page asked the internet for something"
