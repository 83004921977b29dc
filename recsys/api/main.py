"""The lookup API application: ``uvicorn --factory recsys.api.main:create_app``.

It reads published rankings only, so the process imports neither TensorFlow nor pandas:
startup is fast and a worker is small. The pool is created at startup, not at import,
and an unreachable database does not stop the app from starting: /health answers, and
everything else returns 503 until the database is back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from recsys.api import errors, http, limits
from recsys.api.db import create_pool
from recsys.api.routes import health, movies, recommendations
from recsys.api.settings import ApiSettings, get_api_settings
from recsys.db.engine import describe

log = logging.getLogger(__name__)
DOCS_ASSETS = "/docs-assets"

DESCRIPTION = """
Recommendations from the **published** precomputed ranking (PostgreSQL); no model runs per
request. Every answer names the model version and precompute run it came from, and comes
from one database snapshot, so it is never a mix of two runs.

Errors are JSON `{"error": code, "detail": ...}`: 404 unknown user, 413 body too large,
422 invalid request, 429 rate limited or too many connections from one address, 503 database
unavailable, nothing published, or too many requests in progress. HEAD works on every GET.
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_api_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url()
        app.state.pool = create_pool(settings, url)
        await app.state.pool.open(wait=False)  # start even if the database is down: 503s until it is up
        log.info("lookup API reading %s", describe(url))
        try:
            yield
        finally:
            await app.state.pool.close()

    meta = {
        "title": "movielens-ranker lookup API",
        "version": "1.0.0",
        "description": DESCRIPTION,
        "lifespan": lifespan,
    }
    if settings.docs:
        # Swagger UI's script, stylesheet and favicon come from the fastapi-offline wheel and are
        # served by this app (under its root path when mounted): /docs works without internet.
        app = FastAPIOffline(docs_url="/docs", redoc_url=None, static_url=DOCS_ASSETS, **meta)
    else:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **meta)
    for router in (recommendations.router, movies.router, health.router):
        app.include_router(router)
    errors.install(app)
    app.add_middleware(http.Utf8Query)  # inside the limits: a flood is refused before any parsing
    limits.install(app, settings)
    app.add_middleware(http.HeadAsGet)  # outermost: no answer to a HEAD has a body, the limits' included
    return app
