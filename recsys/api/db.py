"""The API's connection pool and its one way to run a query: ``fetch``.

psycopg's own async pool (psycopg_pool), not SQLAlchemy: every lookup is one hand-written
statement, and the async driver costs less CPU per request than SQLAlchemy's sync engine
plus FastAPI's threadpool hop (docs/API.md, "Design notes", has the figures). Library code
(the rerank DAG) keeps using SQLAlchemy; the SQL text is shared (sql/queries/lookup.sql).

Every way a database call can stall is bounded, so a request ends in a response (503 at
worst) instead of hanging: connect (libpq connect_timeout), a dead peer (TCP keepalives,
tcp_user_timeout), a slow query or a lock (statement_timeout, lock_timeout, set per
session by the server), and no connection available (the pool's checkout timeout).
Sessions are read-only (default_transaction_read_only) whatever the role may do, and
autocommit: each query is one statement, so it runs in its own snapshot with no
BEGIN/ROLLBACK round trips.

Two choices are about cost per request (each measured reverted alone: docs/API.md,
"Design notes"):

- ``plan_cache_mode=force_generic_plan``. psycopg prepares a statement after 5
  executions, but under the default ``auto`` PostgreSQL kept planning the top-10 query
  afresh on every execution (its generic plan's estimate is no cheaper), which costs
  more backend CPU than the generic plan planned once per connection. Partition pruning is unaffected: the run comes from the
  ``published_ranking`` subquery, so it is pruned at execution time in either plan, and
  attaching a partition invalidates the cached plan as it does any plan.
- No pre-ping on a connection that was used within the last ``PING_IF_IDLE_S``. The
  pool's check (an empty query before lending a connection) is a full round trip on every
  request. Under load every pooled connection is in use many times a
  second, so the ping would only confirm what the previous request just proved; a
  connection idle for longer is still checked first. A connection that breaks anyway
  (PostgreSQL restarted under load) makes ``fetch`` run the statement once more on
  another connection; the broken one is discarded by the pool and replaced in the
  background, so the API still recovers by itself.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from fastapi import Request
from psycopg_pool import AsyncConnectionPool

from recsys.api.settings import ApiSettings
from recsys.db.urls import conninfo

PING_IF_IDLE_S = 1.0
FETCH_ATTEMPTS = 2  # the first may land on a connection the server closed while it sat in the pool

_last_used: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = weakref.WeakKeyDictionary()


async def check_if_idle(conn: psycopg.AsyncConnection) -> None:
    """The pool's check: ping only a connection that has not been used for a while."""
    if time.monotonic() - _last_used.get(conn, 0.0) > PING_IF_IDLE_S:
        await AsyncConnectionPool.check_connection(conn)


def create_pool(settings: ApiSettings, url: str) -> AsyncConnectionPool:
    timeout_ms = settings.statement_timeout_ms
    # Every setting the API relies on is pinned here, at connect time: a session option wins
    # over the role's defaults, which the role itself may change (ALTER ROLE recsys_api SET).
    options = (
        f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} "
        f"-c idle_in_transaction_session_timeout={10 * timeout_ms} -c default_transaction_read_only=on "
        "-c plan_cache_mode=force_generic_plan -c idle_session_timeout=0 -c search_path=recsys"
    )
    kwargs = {
        "autocommit": True,
        "client_encoding": "UTF8",
        "connect_timeout": settings.connect_timeout_s,
        "options": options,
        "application_name": "recsys-api",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 5000 + timeout_ms,
    }
    return AsyncConnectionPool(
        conninfo(url),
        kwargs=kwargs,
        min_size=settings.pool_size,
        max_size=settings.pool_size + settings.max_overflow,
        open=False,
        check=check_if_idle,  # drop connections the server closed while they sat idle
        timeout=settings.pool_timeout_s,
        max_lifetime=1800,
        # A background reconnection backs off 1, 2, 4 s then gives up; requests that keep
        # arriving start fresh attempts, so recovery after an outage takes seconds, not
        # the doubled delay of a long outage.
        reconnect_timeout=5.0,
        name="recsys-api",
    )


async def fetch(pool: AsyncConnectionPool, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence]:
    """All rows of one statement (one snapshot), on a pooled connection.

    Retried once, on another connection, only when the connection itself broke (the
    server closed it): the statement is a read, so running it again is harmless. A
    timeout, a missing grant or any other error is raised as it is.
    """
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        async with pool.connection() as conn:
            try:
                cur = await conn.execute(sql, params)
                rows = await cur.fetchall()
            except psycopg.OperationalError:
                if conn.broken and attempt < FETCH_ATTEMPTS:
                    continue
                raise
            _last_used[conn] = time.monotonic()
            return rows
    raise AssertionError("unreachable")


def get_pool(request: Request) -> AsyncConnectionPool:
    """The pool of the app serving this request (also when it is mounted in another app)."""
    return request.app.state.pool
