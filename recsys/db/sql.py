"""The named queries of each table family, from ``sql/queries/<family>.sql`` (aiosql).

One file per family of tables (the feature store, the registry, the ranking runs, the
rerank results): the module that owns the family loads its file once and is the only code
that touches those tables. Queries are written with ``:name`` parameters and an aiosql
header (``-- name: users_count()$``); aiosql turns them into psycopg's ``%(name)s`` style.

They run on the psycopg connection under a SQLAlchemy ``Connection`` (``dbapi``), so they
share its transaction: a query called inside ``engine.begin()`` commits or rolls back with
everything else in that block. aiosql is used to load and name the SQL, not to manage
connections. A driver error is raised as SQLAlchemy would raise it (``sa.exc.IntegrityError``
around the psycopg error, in ``.orig``), so callers catch the same exceptions whether a
statement went through SQLAlchemy or through a named query.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import aiosql
import psycopg
import sqlalchemy as sa
from aiosql.adapters.pyformat import PyFormatAdapter
from aiosql.queries import Queries

from recsys.config import SQL_DIR

QUERIES_DIR = SQL_DIR / "queries"


@cache
def queries(family: str) -> Queries:
    """The named queries of one table family (``sql/queries/<family>.sql``), loaded once."""
    return aiosql.from_path(QUERIES_DIR / f"{family}.sql", _SQLAlchemyErrors)


def dbapi(conn: sa.Connection) -> psycopg.Connection:
    """The psycopg connection under a SQLAlchemy connection, inside its transaction."""
    return conn.connection.driver_connection


@contextmanager
def _as_sqlalchemy_error(sql: str, parameters) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, parameters, exc, psycopg.Error) from exc


class _SQLAlchemyErrors(PyFormatAdapter):
    """aiosql's psycopg adapter, raising driver errors as SQLAlchemy's exception classes."""

    def select(self, conn, query_name, sql, parameters, record_class=None):
        with _as_sqlalchemy_error(sql, parameters):
            yield from super().select(conn, query_name, sql, parameters, record_class)

    def select_one(self, conn, query_name, sql, parameters, record_class=None):
        with _as_sqlalchemy_error(sql, parameters):
            return super().select_one(conn, query_name, sql, parameters, record_class)

    def select_value(self, conn, query_name, sql, parameters):
        with _as_sqlalchemy_error(sql, parameters):
            return super().select_value(conn, query_name, sql, parameters)

    @contextmanager
    def select_cursor(self, conn, query_name, sql, parameters):
        with _as_sqlalchemy_error(sql, parameters), super().select_cursor(conn, query_name, sql, parameters) as cur:
            yield cur

    def insert_update_delete(self, conn, query_name, sql, parameters):
        with _as_sqlalchemy_error(sql, parameters):
            return super().insert_update_delete(conn, query_name, sql, parameters)

    def insert_update_delete_many(self, conn, query_name, sql, parameters):
        with _as_sqlalchemy_error(sql, parameters):
            return super().insert_update_delete_many(conn, query_name, sql, parameters)

    def insert_returning(self, conn, query_name, sql, parameters):
        with _as_sqlalchemy_error(sql, parameters):
            return super().insert_returning(conn, query_name, sql, parameters)

    def execute_script(self, conn, sql):
        with _as_sqlalchemy_error(sql, None):
            return super().execute_script(conn, sql)
