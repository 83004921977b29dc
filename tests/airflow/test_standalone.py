"""``make airflow`` (scripts/standalone.sh) as a user runs it, after ``make run``: the real script,
its own AIRFLOW_HOME/RECSYS_HOME and fresh databases on the test server.

Slow (minutes: the components import Airflow on 2 cores): ``make chaos`` runs it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import airflow_env
from recsys.config import PROJECT_ROOT
from recsys.db.admin import create_database, drop_database
from recsys.db.engine import make_engine

ROOT = PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def only_when_slow_tests_are_asked_for(request) -> None:
    """Minutes of wall time: only under ``-m slow`` (``make chaos``), not in ``make test``."""
    expression = request.config.getoption("-m") or ""
    if "slow" not in expression or "not slow" in expression:
        pytest.skip("run with -m slow (make chaos)")


QUIET_S = 45  # how long the UI must run without starting anything
# The API server answers slowly while the scheduler, DAG processor and a task share two busy
# cores (a trigger POST timed out at 10 s): wait for an answer, not for a fast one.
ANSWER_S = 60
BASELINE = "baseline-standalone"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def after_make_run(admin_url: str, archive: Path, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The state ``make run`` leaves: ingest run by ``airflow dags test`` (unpaused DAGs, an asset
    event queued for movielens_train), and a published ranking with a champion."""
    from recsys.api.baseline import publish_baseline

    recsys_url = create_database(admin_url, "recsys_test_standalone")
    meta_url = create_database(admin_url, "airflow_test_standalone")
    home = tmp_path_factory.mktemp("standalone")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_")) and k != "PYTEST_CURRENT_TEST"
    }
    env.update(
        {
            "PATH": f"{ROOT / '.venv' / 'bin'}:{env['PATH']}",
            "AIRFLOW_HOME": str(home / "airflow"),
            "RECSYS_HOME": str(home / "recsys"),
            "RECSYS_DATABASE_URL": recsys_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_env.metadata_url(meta_url, make_url(meta_url).database),
            "AIRFLOW_PORT": str(free_port()),
            "RECSYS_DATA_URL": str(archive),
            "RECSYS_AIRFLOW_STOP_TIMEOUT": "15",
        }
    )
    try:  # a failed setup must not leave the databases behind
        sql_conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        pipeline_env = {**env, **airflow_env.airflow_env(recsys_url, home=home / "airflow", sql_alchemy_conn=sql_conn)}
        for command in (["airflow", "db", "migrate"], ["airflow", "dags", "test", "movielens_ingest"]):
            done = subprocess.run(command, env=pipeline_env, capture_output=True, text=True, cwd=ROOT)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        engine = make_engine(recsys_url)
        publish_baseline(engine, BASELINE)
        engine.dispose()
        yield env
    finally:
        drop_database(admin_url, recsys_url)
        drop_database(admin_url, meta_url)


def dag_runs(env: dict[str, str]) -> list[tuple]:
    engine = sa.create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(sa.text("SELECT dag_id, run_id, state, triggered_by FROM dag_run ORDER BY id")).tuples()
            )
    finally:
        engine.dispose()


def tree(pid: int) -> set[psutil.Process]:
    root = psutil.Process(pid)
    return {root, *root.children(recursive=True)}


def test_make_airflow_starts_nothing_listens_on_loopback_and_stops_everything(after_make_run) -> None:
    import httpx

    env = after_make_run
    port = int(env["AIRFLOW_PORT"])
    base = f"http://127.0.0.1:{port}"
    before = dag_runs(env)
    assert [r[0] for r in before] == ["movielens_ingest"] and before[0][3] == "TEST"
    script = subprocess.Popen(
        ["bash", "scripts/standalone.sh"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as `make airflow` in a terminal
    )
    seen: set[psutil.Process] = set()
    try:
        deadline = time.monotonic() + 300
        while True:
            assert script.poll() is None, script.stdout.read()
            assert time.monotonic() < deadline, "the UI did not come up"
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).json()["scheduler"]["status"] == "healthy":
                    break
            except (httpx.HTTPError, KeyError, ValueError, TypeError):
                pass
            time.sleep(2)
        time.sleep(QUIET_S)  # the scheduler's loops ran many times: nothing may start
        assert dag_runs(env) == before, "starting the UI created DAG runs"

        # Item 4: loopback only, plugin behind the login.
        seen = tree(script.pid)
        listening = {
            c.laddr.ip for p in seen for c in _connections(p) if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listening == {"127.0.0.1"}, listening
        for path in ("/recsys-status/status", "/recsys-api/users/17/recommendations"):
            assert httpx.get(base + path, timeout=ANSWER_S).status_code == 401
        password = _password(env)
        answer = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=ANSWER_S)
        assert answer.status_code == 201, answer.text
        auth = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        status = httpx.get(f"{base}/recsys-status/status", headers=auth, timeout=ANSWER_S)
        assert status.status_code == 200 and status.json()["champion"]["version_id"] == BASELINE
        assert (
            httpx.get(f"{base}/recsys-api/users/17/recommendations", headers=auth, timeout=ANSWER_S).status_code == 200
        )

        # Item 17 and 3: a triggered ingest reads RECSYS_DATA_URL; stop it while its task runs.
        assert httpx.patch(
            f"{base}/api/v2/dags/movielens_ingest", json={"is_paused": False}, headers=auth, timeout=ANSWER_S
        ).is_success
        run = httpx.post(
            f"{base}/api/v2/dags/movielens_ingest/dagRuns",
            json={"logical_date": None, "conf": {"force": True}},
            headers=auth,
            timeout=ANSWER_S,
        )
        assert run.status_code == 200, run.text
        run_id = run.json()["dag_run_id"]
        deadline = time.monotonic() + 180
        while _task_state(base, auth, run_id) != "running":
            assert time.monotonic() < deadline, "load_movielens never started"
            time.sleep(1)
        time.sleep(3)  # inside the task: reading the archive, loading
        seen = tree(script.pid) | seen
        tasks = [p for p in seen if p.is_running() and "airflow worker -- " in " ".join(p.cmdline())]
        assert tasks, "no task process was running when the stop came"  # the task runner's process title
    finally:
        seen = tree(script.pid) | seen if script.poll() is None else seen
        sessions = {_sid(p) for p in seen} - {None}
        os.killpg(script.pid, signal.SIGTERM)  # what a terminal's window close / `kill -- -PGID` does
        try:
            output, _ = script.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            script.kill()
            output, _ = script.communicate()
        print(output[-3000:])
    left = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    left += [p for p in psutil.process_iter() if _sid(p) in sessions and p not in left]
    assert left == [], [(p.pid, p.name()) for p in left]
    assert script.returncode == 143
    runs = {r[1]: r for r in dag_runs(env)}
    assert runs[run_id][2] == "failed", runs[run_id]
    assert {r[0] for r in runs.values() if r[3] != "TEST"} == {"movielens_ingest"}  # only what was asked for
    log = Path(env["AIRFLOW_HOME"]) / "standalone-logs" / "scheduler.log"
    assert "Connection refused" not in log.read_text()


def _connections(p: psutil.Process) -> list:
    try:
        return p.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _sid(p: psutil.Process) -> int | None:
    try:
        return os.getsid(p.pid)
    except OSError:
        return None


def _password(env: dict[str, str]) -> str:
    import json

    path = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    return json.loads(path.read_text())["admin"]


def _task_state(base: str, auth: dict, run_id: str) -> str | None:
    import httpx

    url = f"{base}/api/v2/dags/movielens_ingest/dagRuns/{run_id}/taskInstances/load_movielens"
    answer = httpx.get(url, headers=auth, timeout=ANSWER_S)
    return answer.json().get("state") if answer.status_code == 200 else None
