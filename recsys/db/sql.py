"""The named queries of each table family, from ``sql/queries/<family>.sql`` (aiosql).

One file per family of tables (the feature store, the registry, the ranking runs, the
rerank results): the module that owns the family loads its file once and is the only code
that touches those tables. Queries are written with ``:name`` parameters and an aiosql
header (``-- name: users_count()$``); aiosql turns them into psycopg's ``%(name)s`` style.

They run on the psycopg connection under a SQLAlchemy ``Connection`` (``dbapi``), so they
share its transaction: a query called inside ``engine.begin()`` commits or rolls back with
everything else in that block. aiosql is used to load and name the SQL, not to manage
connections.
"""

from __future__ import annotations

from functools import cache

import aiosql
import psycopg
import sqlalchemy as sa
from aiosql.queries import Queries

from recsys.config import PROJECT_ROOT

QUERIES_DIR = PROJECT_ROOT / "sql" / "queries"


@cache
def queries(family: str) -> Queries:
    """The named queries of one table family (``sql/queries/<family>.sql``), loaded once."""
    return aiosql.from_path(QUERIES_DIR / f"{family}.sql", "psycopg")


def dbapi(conn: sa.Connection) -> psycopg.Connection:
    """The psycopg connection under a SQLAlchemy connection, inside its transaction."""
    return conn.connection.driver_connection
