"""Every failure becomes a JSON body ``{"error": code, "detail": ...}`` with a fitting status.

Database trouble of any kind (down, restarting, timed out, pool exhausted, a missing
grant) is the service being unavailable, not a bug: 503 with Retry-After, so clients
and load balancers back off and retry. Only a genuine bug reaches the 500 handler.
"""

from __future__ import annotations

import logging

import psycopg
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys.errors import DatabaseUnavailable
from recsys.scoring.rerank import NoPublishedRanking, TooManyCandidates, UnknownUser

log = logging.getLogger(__name__)
RETRY_AFTER_S = "2"


def error_response(status: int, error: str, detail: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _unavailable(detail: str) -> JSONResponse:
    return error_response(503, "unavailable", detail, {"Retry-After": RETRY_AFTER_S})


async def _unknown_user(request: Request, exc: UnknownUser) -> JSONResponse:
    return error_response(404, "unknown_user", str(exc))


async def _no_ranking(request: Request, exc: NoPublishedRanking) -> JSONResponse:
    return _unavailable(str(exc))


async def _too_many(request: Request, exc: TooManyCandidates) -> JSONResponse:
    return error_response(422, "too_many_candidates", str(exc))


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return error_response(422, "invalid_request", errors)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "body_too_large"}
    return error_response(
        exc.status_code, codes.get(exc.status_code, "http_error"), exc.detail, getattr(exc, "headers", None)
    )


# SQLSTATE classes/codes that mean "the database cannot serve us right now" (or is not set
# up for the API yet): connection, resources, operator intervention, auth, missing grants
# or objects. Anything else from the driver is a bug and goes to the 500 handler.
_UNAVAILABLE_CLASSES = ("08", "28", "53", "57", "58", "3D")
_UNAVAILABLE_CODES = ("55P03", "42501", "42P01", "25006")


def _is_unavailable(exc: Exception) -> bool:
    unavailable = (sa.exc.TimeoutError, DatabaseUnavailable, sa.exc.OperationalError, sa.exc.InterfaceError)
    if isinstance(exc, unavailable + (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None) or ""
    return sqlstate[:2] in _UNAVAILABLE_CLASSES or sqlstate in _UNAVAILABLE_CODES


async def _database(request: Request, exc: Exception) -> JSONResponse:
    if not _is_unavailable(exc):
        return await _bug(request, exc)
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("57014", "55P03"):  # query_canceled (statement_timeout), lock_not_available
        detail = "the database did not answer in time"
    elif isinstance(exc, sa.exc.TimeoutError):
        detail = "all database connections are busy"
    elif sqlstate in ("42501", "42P01", "3D000", "25006") or (sqlstate or "").startswith("28"):
        detail = "the database is not set up for the API (role, grants or migrations)"
    else:
        detail = "the database is unavailable"
    first_line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    log.warning("%s %s -> 503: %s", request.method, request.url.path, first_line)
    return _unavailable(detail)


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(UnknownUser, _unknown_user)
    app.add_exception_handler(NoPublishedRanking, _no_ranking)
    app.add_exception_handler(TooManyCandidates, _too_many)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    for db_error in (sa.exc.DBAPIError, sa.exc.TimeoutError, DatabaseUnavailable, psycopg.Error):
        app.add_exception_handler(db_error, _database)
    app.add_exception_handler(Exception, _bug)
