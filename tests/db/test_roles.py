"""What the API's login role (``recsys_api``) may do besides reading, connected as that role.

Grants already block every write (tests/api/test_api.py). These check the rest (issue #13):
no temporary tables or functions in the recsys database, no connection to the cluster's
other databases where the project owns the cluster (the managed server, compose's init),
and, for what PostgreSQL lets every role change about itself (ALTER ROLE self SET ...),
that the API's own sessions are not affected.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from recsys.api.db import conninfo, create_pool
from recsys.api.settings import ApiSettings
from recsys.config import PROJECT_ROOT
from recsys.db.migrate import migrate
from tests.support.db import as_role
from tests.support.postgres import TempPostgres

TEMP_OBJECTS = [
    "CREATE TEMP TABLE t (x int)",
    "CREATE TEMPORARY VIEW v AS SELECT 1 AS x",
    "CREATE SEQUENCE pg_temp.s",
    "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
]


def on(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def api_session(url: str) -> psycopg.Connection:
    """A session as recsys_api with its read-only default turned off, so privileges alone decide."""
    conn = psycopg.connect(conninfo(as_role(url)), autocommit=True, connect_timeout=10)
    conn.execute("SET default_transaction_read_only = off")
    return conn


def assert_refused_connection(url: str, database: str) -> None:
    with pytest.raises(psycopg.OperationalError, match=f'permission denied for database "{database}"'):
        psycopg.connect(conninfo(as_role(on(url, database))), connect_timeout=10).close()


def assert_no_temporary_objects(url: str) -> None:
    with api_session(url) as conn:
        for statement in TEMP_OBJECTS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied to create temporary"):
                conn.execute(statement)


def test_api_role_creates_no_temporary_tables_or_functions(migrated: str) -> None:
    assert_no_temporary_objects(migrated)
    with api_session(migrated) as conn:
        # nowhere else to create anything either (PostgreSQL 15+: no CREATE on public for PUBLIC)
        for statement in [
            "CREATE TABLE public.t (x int)",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE FUNCTION recsys.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE SCHEMA evil",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM recsys.movies").fetchone() == (0,)  # still reads
    with psycopg.connect(conninfo(migrated), autocommit=True) as conn:
        public, api = conn.execute(
            "SELECT has_database_privilege('public', current_database(), 'TEMPORARY'), "
            "has_database_privilege('recsys_api', current_database(), 'CONNECT')"
        ).fetchone()
    assert (public, api) == (False, True)


LOOSENED = {  # what the role could set for itself, and what the API's sessions must show instead
    "default_transaction_read_only": ("off", "on"),
    "statement_timeout": ("0", "2s"),
    "lock_timeout": ("0", "2s"),
    "idle_in_transaction_session_timeout": ("0", "20s"),
    "idle_session_timeout": ("10min", "0"),
    "plan_cache_mode": ("force_custom_plan", "force_generic_plan"),
    "search_path": ("public", "recsys"),
    "client_encoding": ("LATIN1", "UTF8"),
}


def test_role_defaults_the_api_role_sets_itself_do_not_reach_the_api_sessions(migrated: str) -> None:
    database = make_url(migrated).database
    with api_session(migrated) as conn:
        # PostgreSQL lets every role set its own defaults; IN DATABASE keeps it to this test's database
        for name, (loose, _) in LOOSENED.items():
            conn.execute(f"ALTER ROLE recsys_api IN DATABASE {database} SET {name} = '{loose}'")
    try:
        with psycopg.connect(conninfo(as_role(migrated)), autocommit=True) as plain:
            shown = {name: plain.execute(f"SHOW {name}").fetchone()[0] for name in LOOSENED}
        assert shown == {name: loose for name, (loose, _) in LOOSENED.items()}, "the role's defaults took hold"

        async def api_shows() -> dict[str, str]:
            pool = create_pool(ApiSettings(statement_timeout_ms=2000, pool_size=1), as_role(migrated))
            await pool.open(wait=True)
            try:
                async with pool.connection() as conn:
                    return {name: (await (await conn.execute(f"SHOW {name}")).fetchone())[0] for name in LOOSENED}
            finally:
                await pool.close()

        assert asyncio.run(api_shows()) == {name: pinned for name, (_, pinned) in LOOSENED.items()}
    finally:
        with psycopg.connect(conninfo(migrated), autocommit=True) as conn:
            conn.execute(f"ALTER ROLE recsys_api IN DATABASE {database} RESET ALL")


def test_managed_server_lets_the_api_role_into_recsys_only() -> None:
    from recsys.db import server

    # Not under tmp_path: another pytest session resets /tmp/pytest-of-<user> to 0700, which the
    # server's own system user must traverse (see tests/db/test_db_server.py).
    folder = tempfile.TemporaryDirectory(prefix="recsys-roles-")
    pgdata = Path(folder.name) / "pgdata"
    url = server.start(pgdata)
    try:
        migrate(url)
        with psycopg.connect(conninfo(url), autocommit=True) as conn:  # what scripts/airflow_env.py does
            conn.execute("CREATE DATABASE airflow")
        assert server.start(pgdata) == url  # the next command's start covers databases created since
        with psycopg.connect(conninfo(as_role(url)), autocommit=True) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == ("recsys_api", "recsys")
        for database in ("postgres", "airflow", "template1"):
            assert_refused_connection(url, database)
        assert_no_temporary_objects(url)
        with psycopg.connect(conninfo(on(url, "airflow")), autocommit=True) as conn:  # the superuser still can
            conn.execute("CREATE TEMP TABLE t (x int)")
    finally:
        server.stop(pgdata, force=True)
        folder.cleanup()


def test_compose_init_lets_the_api_role_into_recsys_only() -> None:
    """scripts/compose/postgres-init.sh on a private cluster, then the migrations as recsys_writer."""
    pg = TempPostgres()
    try:
        env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "POSTGRES_USER": "postgres"}
        env["PATH"] = f"{pg.bindir}{os.pathsep}{env['PATH']}"  # the script's psql: the cluster's own
        env |= {"AIRFLOW_DB_PASSWORD": "a", "RECSYS_WRITER_PASSWORD": "w", "RECSYS_API_PASSWORD": "r"}
        init = PROJECT_ROOT / "scripts" / "compose" / "postgres-init.sh"
        done = subprocess.run(["bash", str(init)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        writer = make_url(on(pg.url, "recsys")).set(username="recsys_writer").render_as_string(hide_password=False)
        migrate(writer)  # as compose's airflow-init does: the owner, no CREATEROLE
        assert_no_temporary_objects(writer)
        for database in ("postgres", "airflow", "template1"):
            assert_refused_connection(writer, database)
        with psycopg.connect(conninfo(writer), autocommit=True) as conn:  # the owner keeps TEMP
            conn.execute("CREATE TEMP TABLE t (x int)")
            assert conn.execute("SELECT count(*) FROM recsys.movies").fetchone() == (0,)
        with psycopg.connect(conninfo(as_role(writer)), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM recsys.top_recommendations").fetchone() == (0,)
    finally:
        pg.destroy()
