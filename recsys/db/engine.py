"""Database URL resolution and engines.

The library takes a plain database URL; Airflow hands it one from its ``recsys_db``
connection, the CLI from ``RECSYS_DATABASE_URL`` or the project-managed server.
"""

from __future__ import annotations

import sqlalchemy as sa

from recsys.config import Settings, get_settings
from recsys.db import server, urls
from recsys.errors import DatabaseUnavailable


def database_url(settings: Settings | None = None) -> str:
    """The configured URL, or the managed server's (started on demand)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return server.start(settings.pgdata)


def make_engine(url: str, **kwargs) -> sa.Engine:
    """An engine whose first connection fails fast with a clear message when the server is down."""
    sa_url = urls.library_url(url)  # psycopg 3; Airflow's postgres:// accepted
    connect_args = {"connect_timeout": 10, **kwargs.pop("connect_args", {})}
    return sa.create_engine(sa_url, connect_args=connect_args, pool_pre_ping=True, **kwargs)


def check_connection(engine: sa.Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to the database at {describe(engine.url)}: {_first_line(exc)}"
        ) from exc


def describe(url: sa.URL | str) -> str:
    """Where a URL points, without its password."""
    return urls.describe(url)


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
