"""Processes killed with SIGKILL at the worst moments: readers keep yesterday's data.

Each test starts the real `recsys` command in a subprocess against the test database,
watches `pg_stat_activity` until that process is inside the step under test, kills it,
and then checks what readers see. Libpq's PGAPPNAME tags the subprocess's connections.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.db import make_settings, published, ranking_digest, snapshot

pytestmark = pytest.mark.slow


def start(args: list[str], db_url: str, app: str) -> subprocess.Popen:
    env = {**os.environ, "RECSYS_DATABASE_URL": db_url, "PGAPPNAME": app}
    return subprocess.Popen(
        [sys.executable, "-m", "recsys.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def kill_when(engine: sa.Engine, proc: subprocess.Popen, app: str, pattern: str, timeout: float = 240) -> str:
    """SIGKILL ``proc`` as soon as one of its connections runs a query matching ``pattern``."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            query = conn.execute(
                sa.text(
                    "SELECT query FROM pg_stat_activity WHERE application_name = :app AND state = 'active' "
                    "AND query ILIKE :pattern LIMIT 1"
                ),
                {"app": app, "pattern": pattern},
            ).scalar()
            conn.commit()
            if query:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                return query
            if proc.poll() is not None:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"process ended (exit {proc.returncode}) before {pattern!r}:\n{output[-3000:]}")
            time.sleep(0.005)
    proc.kill()
    pytest.fail(f"never saw {pattern!r} within {timeout}s")


def wait_backends_gone(engine: sa.Engine, app: str, timeout: float = 120) -> None:
    """The killed client's server-side transaction rolls back once PostgreSQL notices."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            left = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"), {"app": app}
            ).scalar()
            conn.commit()
            if not left:
                return
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :app"),
                {"app": app},
            )
            time.sleep(0.2)


def orphan_tables(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'recsys' AND c.relname ~ '^ranked_scores_r[0-9]+$' AND NOT EXISTS "
                    "(SELECT 1 FROM recsys.precompute_runs r WHERE c.relname = 'ranked_scores_r' || r.run_id "
                    "AND r.status IN ('superseded', 'published'))"
                )
            ).scalars()
        )


@pytest.fixture
def with_ranking(db_engine, tiny_champion) -> None:
    from recsys.scoring.precompute import precompute

    if published(db_engine) is None:
        precompute(db_engine, shards=2, model_version=tiny_champion)


MOMENTS = {
    "writing a shard": "COPY recsys.ranked_scores_r%",
    "indexing a written shard": "CREATE UNIQUE INDEX ON recsys.ranked_scores_r%",
    "publishing": "%(SELECT count(*) FROM recsys.ranked_scores_r%) AS rows%",
}


def test_precompute_killed(db_url, db_engine, tiny_champion, with_ranking):
    """SIGKILL at each moment in turn: readers keep the old ranking; one rerun publishes and cleans up all."""
    before, digest = published(db_engine), ranking_digest(db_engine)
    args = ["precompute", "--model-version", tiny_champion]
    for moment, pattern in MOMENTS.items():
        app = f"fault-{uuid.uuid4().hex[:8]}"
        proc = start([*args, "--shards", "2", "--workers", "1"], db_url, app)
        query = kill_when(db_engine, proc, app, pattern)
        print(f"killed precompute while {moment}: {query[:80]!r}")
        wait_backends_gone(db_engine, app)
        assert published(db_engine) == before, f"the published ranking moved (killed while {moment})"
        assert ranking_digest(db_engine) == digest, f"the published ranking changed (killed while {moment})"

    rerun = start([*args, "--shards", "2", "--workers", "2"], db_url, f"fault-{uuid.uuid4().hex[:8]}-rerun")
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output.decode(errors="replace")[-3000:]
    after = published(db_engine)
    assert after.run_id > before.run_id
    assert ranking_digest(db_engine)[0] == 943 * 1682
    assert orphan_tables(db_engine) == [], "the killed runs' tables were not cleaned up"
    with db_engine.connect() as conn:
        statuses = (
            conn.execute(
                sa.text("SELECT status FROM recsys.precompute_runs WHERE run_id > :a AND run_id < :b"),
                {"a": before.run_id, "b": after.run_id},
            )
            .scalars()
            .all()
        )
    assert len(statuses) == len(MOMENTS) and set(statuses) == {"failed"}
    print(f"held: run {before.run_id} stayed published; rerun published run {after.run_id}")


def test_ingest_killed_mid_copy(empty_db_url, archive: Path):
    from recsys.db.engine import make_engine
    from recsys.ingest import ingest

    ingest(make_settings(), empty_db_url, source=str(archive))
    before = snapshot(empty_db_url)
    engine = make_engine(empty_db_url)
    app = f"fault-{uuid.uuid4().hex[:8]}"
    proc = start(["ingest", "--force", "--source", str(archive)], empty_db_url, app)
    query = kill_when(engine, proc, app, "COPY recsys.ratings%")
    print(f"killed ingest during {query[:40]!r}")
    wait_backends_gone(engine, app)
    engine.dispose()
    assert snapshot(empty_db_url) == before
