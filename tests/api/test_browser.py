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
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.engine import make_url

import airflow_env
from recsys.config import PROJECT_ROOT
from recsys.db.admin import create_database, drop_database
from tests.support.api import ApiServer
from tests.support.browser import chromium
from tests.support.db import as_role
from tests.support.net import free_port

OPERATION = '.opblock-post .opblock-summary-path[data-path="/recommendation/ranked_recommendation"]'


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with chromium() as browser:
        yield browser


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


class AirflowServer(NamedTuple):
    base: str
    token: str  # the plugin's pages need an Airflow login, as a user's browser session has
    password: str  # admin's, for the UI's own login page


@pytest.fixture
def airflow_api_server(migrated: str, airflow_metadata: str, tmp_path: Path) -> Iterator[AirflowServer]:
    """Airflow's API server app, the entry point ``airflow api-server`` runs, with this repo's
    plugins, DAGs (parsed into the metadata database, as the DAG processor does: the UI's
    trigger forms are built from what is stored there) and the simple auth manager.
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
    parse = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "reserialize"], env=env, capture_output=True, text=True
    )
    assert parse.returncode == 0, parse.stderr[-3000:]
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
        yield AirflowServer(base, answer.json()["access_token"], password)
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
    base, token, _ = airflow_api_server
    login = {"Authorization": f"Bearer {token}"}
    blocked = render_docs(browser, f"{base}/recsys-api/docs", tmp_path / "plugin-docs.png", login)
    assert blocked == [], "the docs page asked the internet for something"


def test_rerank_trigger_form_keeps_a_typed_zero_and_the_run_is_refused(browser, airflow_api_server, tmp_path) -> None:
    """#13 item 20: Airflow's number box clamps to a top-level ``minimum`` when it loses focus
    (a typed k = 0 became 1 and that run was created). The ranges sit under ``allOf``
    (``movielens_common.bounds``): the box keeps 0 and creating the run is refused, saying why."""
    base, _, password = airflow_api_server
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{base}/auth/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)
    page.goto(f"{base}/dags/movielens_rerank")
    page.get_by_role("button", name="Trigger").first.click(timeout=60_000)
    page.locator("input[name=element_user_id]").fill("17")
    page.locator("textarea").first.fill("50")
    k = page.locator("input[name=element_k]")
    k.click()
    k.type("0")
    page.keyboard.press("Tab")  # the box clamps on blur
    typed = k.input_value()
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/dagRuns")) as created:
        page.locator("button:has-text('Trigger')").last.click()
    assert typed == "0", f"the form's k box turned a typed 0 into {typed!r}"
    assert created.value.status == 400, "a run was created with k out of range"
    refusal = page.get_by_text("greater than or equal to 1").first  # the form shows why
    assert refusal.inner_text(timeout=10_000).startswith("invalid rerank request: k:")
    page.screenshot(path=str(tmp_path / "rerank-trigger.png"))
    page.close()
