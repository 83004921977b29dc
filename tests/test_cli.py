"""The ``recsys`` command as a user runs it: exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from recsys.data.synthetic import fingerprint, synthetic_members, write_archive

RECSYS = [sys.executable, "-m", "recsys.cli"]


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run(RECSYS + args, capture_output=True, text=True, env=full_env, timeout=120)


def test_ingest_and_query(empty_db_url, tmp_path: Path):
    members = synthetic_members()
    path = write_archive(tmp_path / "ml.zip", members)
    env = {"RECSYS_DATABASE_URL": empty_db_url, "RECSYS_DATA_SHA256": fingerprint(members)}
    done = run(["ingest", "--source", str(path)], **env)
    assert done.returncode == 0, done.stderr
    assert "loaded: 30 users, 40 movies, 450 ratings" in done.stdout
    query = run(["db", "query", "SELECT count(*) AS n FROM recsys.ratings"], **env)
    assert query.stdout.splitlines() == ["n", "450"]


def test_bad_archive_exits_nonzero_with_one_line(empty_db_url, tmp_path: Path):
    members = synthetic_members()
    members["u.data"] += b"1\t2\t3\n"
    path = write_archive(tmp_path / "ml.zip", members)
    done = run(["ingest", "--source", str(path)], RECSYS_DATABASE_URL=empty_db_url, RECSYS_DATA_SHA256="")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("u.data line 451: expected 4 '\\t'-separated fields, got 3")
    assert "Traceback" not in done.stderr


def test_database_down_exits_nonzero(tmp_path: Path):
    done = run(["db", "migrate"], RECSYS_DATABASE_URL="postgresql://postgres@127.0.0.1:1/recsys")
    assert done.returncode == 2
    assert "error: cannot connect to the database at 127.0.0.1:1/recsys" in done.stderr


def test_missing_archive(empty_db_url, tmp_path: Path):
    done = run(["ingest", "--source", str(tmp_path / "none.zip")], RECSYS_DATABASE_URL=empty_db_url)
    assert done.returncode == 2 and "data archive not found" in done.stderr
