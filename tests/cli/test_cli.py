"""The ``recsys`` command as a user runs it: exit codes and one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from recsys.config import PROJECT_ROOT
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


READ_ONLY = "error: query refused: cannot execute CREATE TABLE in a read-only transaction: `recsys db query` is read-only; add --write to commit changes"


def exists(url: str, table: str) -> bool:
    done = run(["db", "query", f"SELECT to_regclass('{table}') IS NOT NULL AS found"], RECSYS_DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines() == ["found", "True"]


def test_query_refuses_writes_without_write_and_commits_with_it(empty_db_url):
    refused = run(["db", "query", "CREATE TABLE recsys.zz (x int)"], RECSYS_DATABASE_URL=empty_db_url)
    assert refused.returncode == 2
    assert refused.stderr.strip() == READ_ONLY
    assert not exists(empty_db_url, "recsys.zz")
    # a COMMIT inside the SQL does not open a writable transaction either
    sneaky = run(["db", "query", "SELECT 1; COMMIT; CREATE TABLE recsys.zz (x int)"], RECSYS_DATABASE_URL=empty_db_url)
    assert sneaky.returncode == 2 and sneaky.stderr.strip() == READ_ONLY
    assert not exists(empty_db_url, "recsys.zz")

    written = run(
        ["db", "query", "--write", "CREATE TABLE recsys.zz (x int); INSERT INTO recsys.zz VALUES (7)"],
        RECSYS_DATABASE_URL=empty_db_url,
    )
    assert written.returncode == 0, written.stderr
    assert written.stdout.splitlines() == ["CREATE TABLE", "", "INSERT 0 1", "committed"]
    assert run(["db", "query", "SELECT x FROM recsys.zz"], RECSYS_DATABASE_URL=empty_db_url).stdout.splitlines() == [
        "x",
        "7",
    ]


def test_query_write_that_fails_commits_nothing(empty_db_url):
    failed = run(
        ["db", "query", "--write", "CREATE TABLE recsys.zz (x int); INSERT INTO recsys.zz VALUES ('seven')"],
        RECSYS_DATABASE_URL=empty_db_url,
    )
    assert failed.returncode == 2
    assert failed.stderr.strip() == (
        'error: query failed: invalid input syntax for type integer: "seven" (nothing was committed)'
    )
    assert not exists(empty_db_url, "recsys.zz")


def test_query_prints_every_statement(empty_db_url):
    sql = "SELECT 1 AS a; SET search_path = recsys; SELECT 'x:y' AS b, 5 % 2 AS c, NULL AS d"
    done = run(["db", "query", sql], RECSYS_DATABASE_URL=empty_db_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["a", "1", "", "SET", "", "b | c | d", "x:y | 1 | "]


def test_query_write_sets_a_role_password_as_docs_api_says(empty_db_url):
    """docs/API.md: the API role's password is set with `recsys db query --write "ALTER ROLE ..."`."""
    role = f"recsys_test_role_{uuid.uuid4().hex[:8]}"  # roles are cluster-wide: a name of its own
    password_set = f"SELECT rolpassword IS NOT NULL AS set FROM pg_authid WHERE rolname = '{role}'"
    env = {"RECSYS_DATABASE_URL": empty_db_url}
    assert run(["db", "query", "--write", f"CREATE ROLE {role} LOGIN"], **env).returncode == 0
    try:
        refused = run(["db", "query", f"ALTER ROLE {role} PASSWORD 'secret'"], **env)
        assert refused.returncode == 2 and "add --write to commit changes" in refused.stderr
        assert run(["db", "query", password_set], **env).stdout.splitlines() == ["set", "False"]
        done = run(["db", "query", "--write", f"ALTER ROLE {role} PASSWORD 'secret'"], **env)
        assert done.stdout.splitlines() == ["ALTER ROLE", "committed"], done.stderr
        assert run(["db", "query", password_set], **env).stdout.splitlines() == ["set", "True"]
    finally:
        run(["db", "query", "--write", f"DROP ROLE IF EXISTS {role}"], **env)


def help_text(capsys, monkeypatch, *args: str) -> str:
    from recsys.cli import main

    monkeypatch.setenv("COLUMNS", "250")  # one line per option, whatever the terminal
    for name in ("RECSYS_API_HOST", "RECSYS_API_PORT", "RECSYS_API_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_is_plain_text(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch)
    assert "``" not in text
    assert "The movielens-ranker command line: one subcommand per job" in text


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (
            ["evaluate"],
            "--split SPLIT u1..u5, ua, ub, random:F:SEED, temporal:F, cold_movies:BASE, "
            "cold_users:BASE, files:TRAIN,TEST (default: the data set's first own split, ML-100K's u1; "
            "random:0.2:42 for one without)",
        ),
        (["serve"], "--host HOST address to listen on (RECSYS_API_HOST) (default: 127.0.0.1)"),
        (["serve"], "--port PORT port (RECSYS_API_PORT) (default: 8000)"),
        (["serve"], "--workers WORKERS worker processes (one per core is a good start) (default: 1)"),
        (["precompute"], "--shards SHARDS shards (users split by user_id % shards) (default: 4)"),
        (
            ["train"],
            "--config CONFIG preset (full, seed_faithful, tiny, smoke, ids_only) or a JSON/YAML file (default: full)",
        ),
        (["db", "query"], "--write allow changes and commit them (default: read-only)"),
        (["db", "stop"], "--force stop it even if live processes still use it"),
    ],
)
def test_help_shows_defaults(capsys, monkeypatch, command: list[str], line: str):
    rows = [" ".join(row.split()) for row in help_text(capsys, monkeypatch, *command).splitlines()]
    assert line in rows


def test_precompute_shards_default_is_the_dags(tmp_path: Path):
    """One default: the CLI's is recsys.scoring.commands.DEFAULT_SHARDS and the DAG's Param mirrors it."""
    from recsys.cli import build_parser
    from recsys.scoring.commands import DEFAULT_SHARDS

    dags = PROJECT_ROOT / "dags"
    # Parsed in a child interpreter with the bundle path on sys.path, as the DAG processor parses it.
    code = (
        "import runpy, sys; sys.path.insert(0, sys.argv[1]); "
        "dag = runpy.run_path(sys.argv[1] + '/movielens_precompute.py')['movielens_precompute'](); "
        "print(dag.params['shards'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "RECSYS_PRECOMPUTE_SHARDS"}  # the DAG's own default
    env["AIRFLOW_HOME"] = str(tmp_path)  # parsing may write an airflow.cfg: keep it out of the user's home
    done = subprocess.run([sys.executable, "-c", code, str(dags)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert build_parser().parse_args(["precompute"]).shards == DEFAULT_SHARDS
    assert int(done.stdout.strip().splitlines()[-1]) == DEFAULT_SHARDS


def test_make_serve_listens_where_the_settings_say(tmp_path: Path):
    """`make serve` honours RECSYS_API_HOST/RECSYS_API_PORT (it hard-coded 127.0.0.1:8000)."""
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:  # a free port, so the test cannot pass by hitting someone's :8000
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = PROJECT_ROOT
    env = {
        **os.environ,
        "RECSYS_API_HOST": "127.0.0.1",
        "RECSYS_API_PORT": str(port),
        # /health answers without a database; an unreachable one keeps the test off real data
        "RECSYS_API_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "RECSYS_HOME": str(tmp_path),
    }
    served = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(root), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # make and the server it starts: one process group to stop
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert served.poll() is None, served.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, f"nothing answered on :{port}"
                time.sleep(0.5)
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        served.wait(timeout=30)


def test_status_says_what_is_served(current_baseline, migrated):
    empty = run(["status"], RECSYS_DATABASE_URL=migrated)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.splitlines() == [
        "newest model:   none registered yet (recsys train)",
        "champion:       none",
        "published:      no ranking yet (recsys precompute)",
    ]
    done = run(["status"], RECSYS_DATABASE_URL=current_baseline.url)
    assert done.returncode == 0, done.stderr
    pairs = len(current_baseline.scores)
    assert (
        f"published:      run {current_baseline.run_id}: {pairs:,} pairs (943 users x 1682 movies) "
        f"scored with model {current_baseline.version}, published "
    ) in done.stdout
    newest, champion = done.stdout.splitlines()[:2]
    assert re.fullmatch(r"newest model:   \S+( \(.+\))?: (champion|challenger|retired|rejected) - .*", newest), newest
    assert re.fullmatch(r"champion:       (none|\S+ \(promoted .+\))", champion), champion


def test_status_with_the_database_down_is_one_line():
    done = run(["status"], RECSYS_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
