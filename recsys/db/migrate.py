"""Apply the versioned SQL in ``sql/`` with yoyo-migrations.

yoyo reads plain ``.sql`` files, applies each in its own transaction under a lock,
and records what it applied, so running it again is a no-op.
"""

from __future__ import annotations

import logging
from pathlib import Path

from yoyo import get_backend, read_migrations

from recsys.config import SQL_DIR
from recsys.db import urls

log = logging.getLogger(__name__)
MIGRATIONS_DIR = SQL_DIR


def migrate(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the ids applied by this call."""
    backend = get_backend(_yoyo_url(url))
    migrations = read_migrations(str(directory))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    applied = [m.id for m in pending]
    for migration_id in applied:
        log.info("applied migration %s", migration_id)
    return applied


def _yoyo_url(url: str) -> str:
    """yoyo wants a driver-less scheme; SQLAlchemy URLs may name one (postgresql+psycopg2)."""
    return urls.plain(url)
