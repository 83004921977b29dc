"""Airflow plugin: the lookup API and a status page, inside the Airflow 3 API server.

What a UI user gains:
- **Recsys status** (Browse menu): the current champion model, the published ranking and
  the last precompute runs and trained models, i.e. "what are users being served right
  now, and did last night's run work?" without writing SQL. JSON at ``/recsys-status/status``.
- **Lookup API** (Browse menu, link to its OpenAPI docs): the project's FastAPI lookup API
  (``recsys.api``) mounted at ``/recsys-api``, so recommendations can be tried from the
  same place the DAGs are run.

Both are read-only: sessions are forced read-only and time-limited, and both connect as the
read-only ``recsys_api`` role (``RECSYS_API_DATABASE_URL``, else the ``recsys_db`` connection
with its user replaced by ``RECSYS_API_DB_ROLE``: ``recsys.api.settings.ApiSettings``, the
lookup API's own settings). Both are behind Airflow's login: a request
without a valid Airflow JWT (the UI's cookie or ``Authorization: Bearer``) gets 401, one from a
user who may not read the movielens DAG runs gets 403.
Plugins are imported by every Airflow component, so this module imports only FastAPI
(already loaded by Airflow); ``recsys`` and SQLAlchemy engines are created when the API
server starts (the sub-apps' lifespans, which Airflow runs for mounted FastAPI apps). If
``recsys.api`` is missing or broken, the lookup API answers 503 with the reason and the
status page still works. The page is the Jinja2 template ``templates/recsys_status.html``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

CONN_ID = "recsys_db"
API_PREFIX = "/recsys-api"
STATUS_PREFIX = "/recsys-status"
STATEMENT_TIMEOUT_MS = 3000
# Who may read the DAG runs of the pipeline may read what it published (and nobody else).
AUTHORIZING_DAG = "movielens_precompute"
TEMPLATES = Path(__file__).resolve().parent / "templates"


# ---------------------------------------------------------------- database URL


def _api_settings():
    """The lookup API's settings, read afresh (the API server's lifespans run once; tests change the env)."""
    from recsys.api.settings import ApiSettings
    from recsys.config import load_settings

    return load_settings(ApiSettings)


def recsys_read_url() -> str | None:
    """Where to read the recsys tables: the API's read-only URL, else ``recsys_db`` as the API role.

    The API server is not a task, so the connection is resolved the core way (secrets
    backends: ``AIRFLOW_CONN_RECSYS_DB``, then the metadata database). Its user (the tasks'
    writer, locally often a superuser) is replaced by ``RECSYS_API_DB_ROLE`` (default
    ``recsys_api``, created by sql/0004.api.sql) with ``RECSYS_API_DB_PASSWORD``, as the
    lookup API does with ``RECSYS_DATABASE_URL``; an empty role keeps the connection's user.
    A bad ``RECSYS_API_*`` value raises ``ConfigError`` (one line naming it).
    """
    settings = _api_settings()
    if settings.database_url:
        return settings.database_url
    try:
        from airflow.models.connection import Connection

        uri = Connection.get_connection_from_secrets(CONN_ID).get_uri()
    except Exception as exc:  # not defined: the pages say so instead of failing the API server
        log.warning("recsys plugin: no %s connection (%s)", CONN_ID, exc)
        return None
    return as_read_role(uri, settings)


def as_read_role(uri: str, settings=None) -> str:
    """``uri`` with the read-only API role as its user (``RECSYS_API_DB_ROLE``, empty keeps the user)."""
    return (settings or _api_settings()).as_read_role(uri)


# ---------------------------------------------------------------- Airflow login


async def airflow_user_may_read(request: Request) -> None:
    """Raise 401 without a valid Airflow JWT, 403 if the user may not read the pipeline's DAG runs.

    The same dependency Airflow's own routes use (``get_user``: the Bearer header, else the
    UI's cookie), imported here because only the API server calls it.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request, _oauth_token=None, bearer_credentials=credentials)
    allowed = get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=AUTHORIZING_DAG), user=user
    )
    if not allowed:
        raise HTTPException(status_code=403, detail="Forbidden")


class RequireAirflowLogin:
    """ASGI middleware: every HTTP request (mounted sub-apps included) needs an Airflow login first.

    A middleware, not FastAPI ``dependencies``: those do not reach an app mounted inside another.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await airflow_user_may_read(Request(scope))
            except HTTPException as exc:
                response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def read_only_engine(url: str):
    """An engine whose sessions cannot write and whose queries cannot hang the API server."""
    from recsys.db.engine import make_engine

    options = f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    return make_engine(
        url, connect_args={"connect_timeout": 3, "options": options, "application_name": "airflow-recsys-plugin"}
    )


# ---------------------------------------------------------------- lookup API


def _unavailable_app(reason: str) -> FastAPI:
    app = FastAPI(title="recsys lookup API (unavailable)", docs_url=None, redoc_url=None, openapi_url=None)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def unavailable(path: str) -> JSONResponse:
        return JSONResponse({"error": "unavailable", "detail": reason}, status_code=503)

    return app


def build_lookup_app() -> FastAPI:
    """The project's lookup API (``recsys.api.main.create_app``), or a 503 stand-in saying why not."""
    try:
        from recsys.api.main import create_app
        from recsys.config import get_settings
    except ImportError as exc:
        return _unavailable_app(f"the lookup API is not installed in this Airflow image ({exc})")
    try:
        settings = _api_settings()
        if not settings.database_url and not get_settings().database_url:
            url = recsys_read_url()
            if url is None:
                return _unavailable_app(f"set RECSYS_API_DATABASE_URL or the Airflow connection {CONN_ID!r}")
            settings = settings.model_copy(update={"database_url": url})
        return create_app(settings)
    except Exception as exc:  # a bad RECSYS_API_* value must not take the Airflow API server down
        log.exception("recsys plugin: cannot build the lookup API")
        return _unavailable_app(f"the lookup API failed to start: {type(exc).__name__}: {exc}")


@asynccontextmanager
async def _lookup_lifespan(shell: FastAPI) -> AsyncIterator[None]:
    """Build the real app when the API server starts, mount it, and run its own lifespan."""
    inner = build_lookup_app()
    shell.mount("/", inner)
    try:
        async with inner.router.lifespan_context(inner):
            yield
    except Exception as exc:  # e.g. its engine cannot be built: serve a 503 explanation instead
        log.exception("recsys plugin: lookup API lifespan failed")
        shell.router.routes.clear()
        shell.mount("/", _unavailable_app(f"the lookup API failed to start: {type(exc).__name__}: {exc}"))
        yield


def make_lookup_shell() -> FastAPI:
    """A cheap FastAPI shell (Airflow runs its lifespan); ``recsys`` is imported only inside it."""
    shell = FastAPI(lifespan=_lookup_lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    shell.add_middleware(RequireAirflowLogin)
    return shell


# ---------------------------------------------------------------- status page


@asynccontextmanager
async def _status_lifespan(app: FastAPI) -> AsyncIterator[None]:
    from recsys.errors import RecsysError

    app.state.engine = None
    app.state.problem = None
    try:
        url = recsys_read_url()
        if url is None:
            app.state.problem = (
                f"no database configured: set the Airflow connection {CONN_ID!r} (AIRFLOW_CONN_RECSYS_DB)"
            )
        else:
            app.state.engine = read_only_engine(url)
    except RecsysError as exc:  # a bad RECSYS_API_* value: the page says which, the API server stays up
        app.state.problem = str(exc)
    except Exception as exc:
        app.state.problem = f"cannot use the recsys database: {type(exc).__name__}: {exc}"
    try:
        yield
    finally:
        if app.state.engine is not None:
            app.state.engine.dispose()


def _status_or_problem(request: Request) -> tuple[dict[str, Any] | None, str | None]:
    import sqlalchemy as sa

    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        return None, getattr(request.app.state, "problem", None) or "the status app has not started"
    from recsys.status import read_status

    try:
        return read_status(engine), None
    except sa.exc.DBAPIError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()
        return None, f"the recsys database is unavailable: {first[0] if first else type(exc).__name__}"


def make_status_app() -> FastAPI:
    app = FastAPI(
        title="recsys status",
        description="Champion model, published ranking and recent runs (read-only).",
        lifespan=_status_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(RequireAirflowLogin)

    @app.get("/status", summary="Champion, published ranking, last precompute runs and models (JSON)")
    def status_json(request: Request) -> JSONResponse:
        status, problem = _status_or_problem(request)
        if problem:
            return JSONResponse({"error": "unavailable", "detail": problem}, status_code=503)
        return JSONResponse(status)

    @app.get("/", response_class=HTMLResponse, summary="The same, as a page for the Airflow UI")
    def status_page(request: Request) -> HTMLResponse:
        status, problem = _status_or_problem(request)
        if problem:
            return HTMLResponse(render_page(problem=problem), status_code=503)
        return HTMLResponse(render_page(status=status))

    return app


@lru_cache(maxsize=1)
def _templates():
    """The page's Jinja2 environment (jinja2 comes with FastAPI and Airflow), autoescaping every value."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )


def render_page(*, status: dict[str, Any] | None = None, problem: str | None = None) -> str:
    """The status page: what is served now and the last runs, or the problem that prevents reading them."""
    return (
        _templates()
        .get_template("recsys_status.html")
        .render(status=status, problem=problem, status_prefix=STATUS_PREFIX, api_prefix=API_PREFIX)
    )


# ---------------------------------------------------------------- the plugin


class RecsysPlugin(AirflowPlugin):
    """Registers the two apps in the API server and links them from the UI's Browse menu."""

    name = "recsys"
    fastapi_apps = [
        {"app": make_lookup_shell(), "url_prefix": API_PREFIX, "name": "recsys lookup API"},
        {"app": make_status_app(), "url_prefix": STATUS_PREFIX, "name": "recsys status"},
    ]
    external_views = [
        {
            "name": "Recsys status",
            "href": f"{STATUS_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "recsys-status",
        },
        {
            "name": "Lookup API docs",
            "href": f"{API_PREFIX}/docs",
            "destination": "nav",
            "category": "browse",
            "url_route": "recsys-api-docs",
        },
    ]
