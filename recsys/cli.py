"""The ``recsys`` command line: one subcommand per job, each a thin call into the library.

User-caused problems (``RecsysError``) print one line and exit 2; heavy imports
(TensorFlow) happen inside the subcommands that need them, so ``recsys --help`` is quick.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from recsys.config import get_settings
from recsys.errors import RecsysError

log = logging.getLogger("recsys")
Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except RecsysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the database: managed server, URL, migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    for name, handler, text in (
        ("start", _db_start, "start the project-managed PostgreSQL (if no RECSYS_DATABASE_URL)"),
        ("url", _db_url, "print the database URL in use"),
        ("migrate", _db_migrate, "apply pending schema migrations"),
    ):
        db_sub.add_parser(name, help=text).set_defaults(handler=handler)
    stop = db_sub.add_parser(
        "stop",
        help="stop the project-managed PostgreSQL",
        description="Stop the project-managed PostgreSQL (in RECSYS_HOME/pgdata). Processes that started it and "
        "have exited since no longer hold it; if live ones still do, it refuses and names them (exit 2).",
    )
    stop.add_argument("--force", action="store_true", help="stop it even if live processes still use it")
    stop.set_defaults(handler=_db_stop)
    query = db_sub.add_parser("query", help="run one SQL query and print the result (no psql needed)")
    query.add_argument("sql")
    query.set_defaults(handler=_db_query)

    ingest = sub.add_parser("ingest", help="download, validate and load MovieLens 100K")
    ingest.add_argument("--source", help="https URL, file:// URL or path (default: RECSYS_DATA_URL)")
    ingest.add_argument("--force", action="store_true", help="reload even if already loaded")
    ingest.set_defaults(handler=_ingest)

    _register_optional(sub, "recsys.model.commands")
    _register_optional(sub, "recsys.scoring.commands")
    _register_optional(sub, "recsys.api.commands")
    return parser


def _register_optional(sub: argparse._SubParsersAction, module: str) -> None:
    """Subcommands of parts that register themselves (model, scoring, api)."""
    import importlib

    try:
        importlib.import_module(module).register(sub)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise


def _db_start(args: argparse.Namespace) -> int:
    from recsys.db.engine import database_url, describe

    print(describe(database_url()))
    return 0


def _db_stop(args: argparse.Namespace) -> int:
    from recsys.db import server

    print(server.stop(get_settings().pgdata, force=args.force))
    return 0


def _db_url(args: argparse.Namespace) -> int:
    from recsys.db.engine import database_url

    print(database_url())
    return 0


def _db_migrate(args: argparse.Namespace) -> int:
    from recsys.db.engine import check_connection, database_url, make_engine
    from recsys.db.migrate import migrate

    url = database_url()
    check_connection(make_engine(url))
    applied = migrate(url)
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def _db_query(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from recsys.db.engine import check_connection, database_url, make_engine

    engine = make_engine(database_url())
    check_connection(engine)
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(args.sql))
            rows = result.fetchall() if result.returns_rows else []
            columns = list(result.keys()) if result.returns_rows else []
    except sa.exc.DBAPIError as exc:
        raise RecsysError(f"query failed: {str(exc.orig).strip()}") from exc
    if columns:
        print(" | ".join(columns))
        for row in rows:
            print(" | ".join("" if v is None else str(v) for v in row))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from recsys.db.engine import database_url
    from recsys.ingest import ingest

    result = ingest(get_settings(), database_url(), source=args.source, force=args.force)
    verb = "loaded" if result.loaded else "already loaded"
    print(
        f"{verb}: {result.users} users, {result.movies} movies, {result.ratings} ratings "
        f"(sha256(u.data) {result.fingerprint[:12]}...) in {result.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
