"""The distributed path, really run: movielens_precompute under the CeleryExecutor with two
``airflow celery worker`` processes on the machine's Redis, one of them SIGKILLed mid-shard.

The scheduler, DAG processor, API server (the workers' tasks report to its execution API)
and both workers are started here as the deployment's services are, each with its own
environment; the recsys and metadata databases are fresh. Slow (minutes): ``make chaos``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import airflow_env
from recsys.config import PROJECT_ROOT
from recsys.db.admin import create_database, drop_database
from tests.support.net import free_port

pytestmark = pytest.mark.slow

BROKER = os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
WORKERS = ("worker-a", "worker-b")
SHARDS = 4
HEARTBEAT_TIMEOUT_S = 30  # how long a lost worker's task stays "running" before the scheduler fails the try


@pytest.fixture(scope="module", autouse=True)
def only_when_slow_tests_are_asked_for(request) -> None:
    """Minutes of wall time: only under ``-m slow`` (``make chaos``), not in ``make test``."""
    expression = request.config.getoption("-m") or ""
    if "slow" not in expression or "not slow" in expression:
        pytest.skip("run with -m slow (make chaos)")


@pytest.fixture(scope="module")
def stack(admin_url: str, archive: Path, tmp_path_factory) -> Iterator[dict]:
    """Data, a champion, and the Celery deployment's processes; everything stopped and dropped after."""
    broker = redis.Redis.from_url(BROKER)
    broker.ping()  # a clear failure when Redis is not there
    broker.flushdb()  # this test's own database number: nothing of anyone else's
    recsys_url = create_database(admin_url, "recsys_test_celery")
    meta_url = create_database(admin_url, "airflow_test_celery")
    home = tmp_path_factory.mktemp("celery")
    metadata = airflow_env.metadata_url(meta_url, make_url(meta_url).database)
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_")) and k != "PYTEST_CURRENT_TEST"
    }
    env |= airflow_env.airflow_env(recsys_url, home=home / "airflow", sql_alchemy_conn=metadata)
    env |= {
        "PATH": f"{PROJECT_ROOT / '.venv' / 'bin'}:{env['PATH']}",
        "RECSYS_HOME": str(home / "recsys"),  # the artifact directory every worker reads (one host here)
        "RECSYS_DATABASE_URL": recsys_url,
        "RECSYS_AIRFLOW_RETRY_DELAY_S": "1",
        "RECSYS_PRECOMPUTE_SHARDS": str(SHARDS),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": BROKER,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # only the run asked for here
        "AIRFLOW__API_AUTH__JWT_SECRET": "celery-test-secret-not-for-production",
        # Both workers share this host: each names itself, so the task instances say which ran a try.
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.support.worker_name.hostname",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    logs = home / "logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen] = {}
    try:
        for command in (
            ["recsys", "ingest", "--source", str(archive)],
            ["recsys", "train", "--config", "smoke", "--split", "u1", "--quiet"],
            ["airflow", "db", "migrate"],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        services = {
            "api-server": ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
            "scheduler": ["airflow", "scheduler"],
            "dag-processor": ["airflow", "dag-processor"],
        }
        for name in WORKERS:
            services[name] = ["airflow", "celery", "worker", "--concurrency", "1", "--skip-serve-logs"]
            services[name] += ["--celery-hostname", f"{name}@%h"]
        for name, command in services.items():
            proc_env = {**env, "RECSYS_WORKER_NAME": name} if name in WORKERS else env
            with open(logs / f"{name}.log", "w") as out:
                procs[name] = subprocess.Popen(
                    command,
                    env=proc_env,
                    cwd=PROJECT_ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        yield {"env": env, "procs": procs, "logs": logs, "metadata": metadata, "recsys": recsys_url}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        broker.flushdb()
        drop_database(admin_url, recsys_url)
        drop_database(admin_url, meta_url)


def airflow(stack: dict, *args: str) -> str:
    done = subprocess.run(["airflow", *args], env=stack["env"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def query(url: str, statement: str, **params) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(statement), params).tuples())
    finally:
        engine.dispose()


def shard_tries(stack: dict, run_id: str) -> list[tuple]:
    """(shard, try, worker, state) of every try of every shard, finished tries and current ones."""
    return query(
        stack["metadata"],
        """
        SELECT map_index, try_number, hostname, state::text FROM task_instance_history
         WHERE dag_id = 'movielens_precompute' AND task_id = 'score_shard' AND run_id = :r
        UNION ALL
        SELECT map_index, try_number, hostname, state::text FROM task_instance
         WHERE dag_id = 'movielens_precompute' AND task_id = 'score_shard' AND run_id = :r
        ORDER BY 1, 2
        """,
        r=run_id,
    )


def wait_for(what: str, timeout: float, check):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(2)


def test_two_celery_workers_share_the_shards_and_a_killed_worker_s_shard_is_retried_on_the_other(stack) -> None:
    procs = stack["procs"]
    wait_for("the DAG processor to store movielens_precompute", 240, lambda: _stored(stack))
    # Catchup is off: unpausing runs the latest nightly tick, as a deployment's first night does.
    airflow(stack, "dags", "unpause", "movielens_precompute")
    run_id = wait_for("the scheduler to start the nightly run", 240, lambda: _run_ids(stack))[0]

    # Kill a worker while it is inside a shard: its whole process tree, as a lost host.
    def running_on_a_worker():
        running = [(s, w) for s, _, w, state in shard_tries(stack, run_id) if state == "running" and w in WORKERS]
        return running[0] if running else None

    shard, victim = wait_for("a shard running on a worker", 420, running_on_a_worker)
    time.sleep(5)  # inside the shard: importing TensorFlow, loading the model, scoring
    started = time.monotonic()
    worker = psutil.Process(procs[victim].pid)
    for p in [worker, *worker.children(recursive=True)]:
        p.send_signal(signal.SIGKILL)
    survivor = next(w for w in WORKERS if w != victim)

    def finished():
        state = query(stack["metadata"], "SELECT state::text FROM dag_run WHERE run_id = :r", r=run_id)[0][0]
        return state if state in ("success", "failed") else None

    state = wait_for("the DAG run to finish", 600, finished)
    tries = shard_tries(stack, run_id)
    print(f"killed {victim} in shard {shard}; run {state} {time.monotonic() - started:.0f} s later")
    for row in tries:
        print("shard {} try {} on {}: {}".format(*row))
    startups = _startup_lines(stack, run_id)
    for line in startups:
        print(line)
    assert state == "success", tries
    assert len(startups) >= SHARDS, "each finished shard logs what it paid to start"
    assert {w for _, _, w, _ in tries} == set(WORKERS), "both workers ran shards"
    killed = [t for t in tries if t[0] == shard]
    assert killed[0][2] == victim and killed[0][3] != "success", killed
    assert killed[-1][2] == survivor and killed[-1][3] == "success", killed
    assert sorted({s for s, _, _, st in tries if st == "success"}) == list(range(SHARDS))

    assert _run_ids(stack) == [run_id]  # nothing else ran
    published = query(
        stack["recsys"],
        "SELECT run_id, status, rows FROM recsys.precompute_runs ORDER BY run_id",
    )
    assert [row[1] for row in published] == ["published"], published
    users, movies, rows = query(
        stack["recsys"],
        "SELECT (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies),"
        " (SELECT count(*) FROM recsys.current_ranked_scores)",
    )[0]
    assert rows == users * movies == published[0][2]  # every pair, each shard written once


def _startup_lines(stack: dict, run_id: str) -> list[str]:
    """The start-up cost line of every shard try's task log (a killed try has none)."""
    logs = Path(stack["env"]["AIRFLOW_HOME"]) / "logs" / "dag_id=movielens_precompute" / f"run_id={run_id}"
    found = []
    for path in sorted(logs.glob("task_id=score_shard/map_index=*/attempt=*.log")):
        lines = [line for line in path.read_text(errors="replace").splitlines() if "start-up" in line]
        found += [f"{path.parent.name} {path.stem}: {line[:400]}" for line in lines]
    return found


def _run_ids(stack: dict) -> list[str]:
    rows = query(stack["metadata"], "SELECT run_id FROM dag_run WHERE dag_id = 'movielens_precompute' ORDER BY id")
    return [run_id for (run_id,) in rows]


def _stored(stack: dict) -> bool:
    return bool(query(stack["metadata"], "SELECT 1 FROM dag WHERE dag_id = 'movielens_precompute'"))
