"""The local Airflow environment of this project, in one place for the scripts and the tests.

Why a module and not shell: the same rules (which metadata database, which folders, which
connection) are needed by ``scripts/pipeline.sh``, ``scripts/standalone.sh`` and the DAG
tests, and getting them subtly different is how "works in CI, fails on my machine" starts.

Rules:
- ``AIRFLOW_HOME`` is ``.local/airflow`` (git-ignored), unless already set.
- The metadata database is PostgreSQL, never SQLite: a database named ``airflow`` on the
  same server as the recsys database (created here if missing), unless
  ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` is already set.
- The recsys database reaches the DAGs only through the ``recsys_db`` connection
  (``AIRFLOW_CONN_RECSYS_DB``), exactly as in docker-compose.

Command line (used by the shell scripts)::

    python scripts/airflow_env.py exports RECSYS_URL   # prints `export NAME=value` lines
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from recsys.db import urls

ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = ROOT / "dags"
PLUGINS_FOLDER = ROOT / "plugins"
DEFAULT_HOME = ROOT / ".local" / "airflow"
METADATA_DATABASE = "airflow"


def metadata_url(recsys_url: str, database: str = METADATA_DATABASE) -> str:
    """The URL of ``database`` on the recsys database's server, with Airflow's driver (psycopg2).

    Airflow's ORM is tested upstream with psycopg2; the recsys library uses psycopg 3.
    Both are installed, so each gets the driver it is tested with.
    """
    return urls.airflow_metadata(recsys_url, database)


def connection_uri(recsys_url: str) -> str:
    """``AIRFLOW_CONN_RECSYS_DB``: Airflow's URI form of the recsys URL (``postgresql://`` scheme).

    A SQLAlchemy driver suffix (``+psycopg``) is dropped: Airflow would keep it in the
    connection type and no Postgres hook would match it.
    """
    return urls.plain(recsys_url)


def ensure_database(recsys_url: str, database: str = METADATA_DATABASE) -> None:
    """Create ``database`` on the recsys server if it does not exist (needs CREATEDB)."""
    import psycopg

    with psycopg.connect(**urls.connect_kwargs(recsys_url), connect_timeout=10, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            from psycopg import sql

            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def airflow_env(
    recsys_url: str,
    *,
    home: Path | str | None = None,
    sql_alchemy_conn: str | None = None,
) -> dict[str, str]:
    """The environment variables the local Airflow commands need (nothing secret is invented here)."""
    home = Path(home or os.environ.get("AIRFLOW_HOME") or DEFAULT_HOME)
    conn = sql_alchemy_conn or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or metadata_url(recsys_url)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": os.environ.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
        # The project's DAGs are meant to run: new DAGs start unpaused (catchup is off,
        # so nothing back-fills; cron schedules wait for their next tick).
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # TensorFlow and the recsys imports make a task's first seconds slow on 2 cores.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW_CONN_RECSYS_DB": os.environ.get("AIRFLOW_CONN_RECSYS_DB") or connection_uri(recsys_url),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def isolate_for_tests() -> Path:
    """Point this process's Airflow at a throwaway home, before anything imports ``airflow``.

    Airflow reads ``AIRFLOW_HOME`` once, at import time, and writes ``airflow.cfg`` there;
    the tests must never touch ``~/airflow`` or the developer's ``.local/airflow``. Called
    at import time of the Airflow test modules (idempotent: one home per test process).
    The metadata database is set later, by the session fixture that creates it.
    """
    import tempfile

    home = os.environ.get("RECSYS_TEST_AIRFLOW_HOME")
    if not home:
        home = tempfile.mkdtemp(prefix="recsys-airflow-test-")
        os.environ["RECSYS_TEST_AIRFLOW_HOME"] = home
    if "airflow" not in sys.modules:
        os.environ["AIRFLOW_HOME"] = home
    for name, value in {
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # A retried shard waits ~1 s instead of 30 s (the backoff still doubles it).
        "RECSYS_AIRFLOW_RETRY_DELAY_S": "1",
    }.items():
        os.environ[name] = value
    return Path(home)


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "exports":
        print("usage: airflow_env.py exports RECSYS_URL", file=sys.stderr)
        return 2
    recsys_url = argv[1]
    env = airflow_env(recsys_url)
    if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:
        try:
            ensure_database(recsys_url)
        except Exception as exc:  # a one-line, actionable message instead of a traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(
                f"error: cannot create the Airflow metadata database '{METADATA_DATABASE}' next to the recsys "
                f"database ({first}); create it yourself or set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                file=sys.stderr,
            )
            return 2
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
