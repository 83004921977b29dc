"""Create and drop whole databases: for tests, benchmarks and throwaway environments.

Needs a superuser (or CREATEDB) URL. Names get a random suffix so concurrent runs on one
server never collide; dropping uses ``WITH (FORCE)`` so a leaked connection cannot keep
a scratch database alive.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from recsys.db import urls
from recsys.db.engine import make_engine


def create_database(admin_url: str, prefix: str) -> str:
    """Create ``<prefix>_<random>`` on the server of ``admin_url``; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _as_admin(admin_url, f'CREATE DATABASE "{name}"')
    return urls.on_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    _as_admin(admin_url, f'DROP DATABASE IF EXISTS "{urls.parse(url).database}" WITH (FORCE)')


def _as_admin(admin_url: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE refuse to run in one)."""
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        admin.dispose()
