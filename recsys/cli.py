"""The ``recsys`` command line: one subcommand per job, each a thin call into the library.

User-caused problems (``RecsysError``) print one line and exit 2; heavy imports
(TensorFlow) happen inside the subcommands that need them, so ``recsys --help`` is quick.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from recsys.config import get_settings
from recsys.errors import RecsysError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("recsys")
Handler = Callable[[argparse.Namespace], int]


# The parts that register their own subcommands, the subcommands each registers, and the extra
# that installs its dependencies (pyproject.toml). Only the part of the subcommand being run is
# imported, so `recsys serve` never imports the model's packages.
PARTS = {
    "recsys.model.commands": (("train", "evaluate"), "model"),
    "recsys.scoring.commands": (("precompute",), "model"),
    "recsys.api.commands": (("serve",), "api"),
    "recsys.status": (("status",), "model"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
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


DESCRIPTION = "The movielens-ranker command line: one subcommand per job, each a thin call into the library."
EPILOG = "Problems a user can fix print one line (error: ...) and exit 2. Settings: RECSYS_* variables (README)."


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show or the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """The parser class of ``recsys`` and, through ``add_subparsers``, of every subcommand."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        # argparse prints nothing for an option without help, so its default would stay hidden
        if action.help is None and action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            action.help = "(default: %(default)s)"
        return action


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if any."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or for a ``command`` of a part only that part's subcommands (and the core's)."""
    parser = Parser(prog="recsys", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the database: managed server, URL, migrations, queries")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    for name, handler, text in (
        ("start", _db_start, "start the project-managed PostgreSQL (if no RECSYS_DATABASE_URL)"),
        ("url", _db_url, "print the database URL in use"),
        ("migrate", _db_migrate, "apply pending schema migrations"),
    ):
        db_sub.add_parser(name, help=text, description=text).set_defaults(handler=handler)
    stop = db_sub.add_parser(
        "stop",
        help="stop the project-managed PostgreSQL",
        description="Stop the project-managed PostgreSQL (in RECSYS_HOME/pgdata). Processes that started it and "
        "have exited since no longer hold it; if live ones still do, it refuses and names them (exit 2).",
    )
    stop.add_argument("--force", action="store_true", help="stop it even if live processes still use it")
    stop.set_defaults(handler=_db_stop)
    query = db_sub.add_parser(
        "query",
        help="run SQL and print each statement's result (no psql needed); read-only unless --write",
        description="Run SQL (one or more ;-separated statements) and print each result: a header and rows, "
        "or the command status. Runs read-only unless --write is given.",
    )
    query.add_argument("sql", help="the SQL text")
    query.add_argument("--write", action="store_true", help="allow changes and commit them (default: read-only)")
    query.set_defaults(handler=_db_query)

    ingest = sub.add_parser("ingest", help="download, validate and load the data set (RECSYS_DATASET, default ml-100k)")
    ingest.add_argument("--source", help="https URL, file:// URL or path (default: RECSYS_DATA_URL)")
    ingest.add_argument("--force", action="store_true", help="reload even if already loaded")
    ingest.set_defaults(handler=_ingest)

    named = [module for module, (commands, _) in PARTS.items() if command in commands]
    for module in named or PARTS:
        _register_optional(sub, module)
    return parser


def _register_optional(sub: argparse._SubParsersAction, module: str) -> None:
    """Subcommands of parts that register themselves (model, scoring, api).

    A part whose extra is not installed (a package it imports is missing) still lists its
    subcommands; running one says which extra to install and exits 2.
    """
    import importlib

    try:
        importlib.import_module(module).register(sub)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "recsys":
            raise
        commands, extra = PARTS[module]
        for name in commands:
            missing = sub.add_parser(name, help=f"(needs the {extra} extra: pip install '.[{extra}]')")
            missing.set_defaults(handler=_needs_extra(name, extra, exc.name))


def _needs_extra(command: str, extra: str, package: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        raise RecsysError(
            f"`recsys {command}` needs the {extra} extra ({package} is not installed): pip install '.[{extra}]'"
        )

    return handler


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
    import psycopg

    from recsys.db.engine import check_connection, database_url, make_engine

    engine = make_engine(database_url())
    check_connection(engine)
    raw = engine.raw_connection()
    try:
        conn: psycopg.Connection = raw.driver_connection
        if not args.write:
            conn.autocommit = True
            # the session default, so even statements after a COMMIT inside the SQL stay read-only
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            conn.autocommit = False
        cursor = conn.cursor()
        # no parameters: psycopg sends the text as is (simple protocol), so ';' lists, ':x' and '%' all work
        cursor.execute(args.sql)
        outputs = [_format_result(cursor)]
        while cursor.nextset():
            outputs.append(_format_result(cursor))
        conn.commit()
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise RecsysError(
            f"query refused: {str(exc).strip()}: `recsys db query` is read-only; add --write to commit changes"
        ) from exc
    except psycopg.Error as exc:
        nothing = " (nothing was committed)" if args.write else ""
        raise RecsysError(f"query failed: {str(exc).strip().splitlines()[0]}{nothing}") from exc
    finally:
        raw.close()
        engine.dispose()
    print("\n\n".join(outputs))
    if args.write:
        print("committed")
    return 0


def _format_result(cursor: psycopg.Cursor) -> str:
    """One statement's result: a header line and one line per row, or its status (``ALTER ROLE``)."""
    if cursor.description is None:
        return cursor.statusmessage or ""
    lines = [" | ".join(column.name for column in cursor.description)]
    lines += [" | ".join("" if v is None else str(v) for v in row) for row in cursor.fetchall()]
    return "\n".join(lines)


def _ingest(args: argparse.Namespace) -> int:
    from recsys.data.adapters import adapter
    from recsys.data.download import local_archive
    from recsys.db.engine import database_url
    from recsys.ingest import ingest

    settings = get_settings()
    # The source before the database: own-csv without RECSYS_DATA_URL, or a missing local file, says
    # so before a managed server starts.
    source = args.source or settings.source_url
    local_archive(source)
    result = ingest(settings, database_url(), source=source, force=args.force)
    verb = "loaded" if result.loaded else "already loaded"
    print(
        f"{verb}: {result.users} users, {result.movies} movies, {result.ratings} ratings "
        f"(sha256({adapter(result.dataset).fingerprint_member}) {result.fingerprint[:12]}..., {result.dataset}) "
        f"in {result.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
