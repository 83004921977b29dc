"""Ingestion into the real PostgreSQL: counts, idempotence, and failures that change nothing."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from recsys.config import OFFICIAL_UDATA_SHA256, PROJECT_ROOT
from recsys.data.movielens import read_archive
from recsys.data.synthetic import fingerprint, synthetic_members, write_archive
from recsys.db.admin import create_database, drop_database
from recsys.db.engine import make_engine
from recsys.db.store import load_movielens, replace_movielens
from recsys.errors import DatabaseUnavailable, DataError, DownloadError
from recsys.ingest import ingest
from tests.support.db import make_settings, snapshot

ROOT = PROJECT_ROOT
RECSYS = Path(sys.executable).parent / "recsys"


@pytest.fixture
def synthetic(tmp_path: Path):
    members = synthetic_members()
    return write_archive(tmp_path / "synthetic.zip", members), fingerprint(members)


def test_real_archive_loads_with_expected_counts(db_engine):
    with db_engine.connect() as conn:
        counts = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies), "
                "(SELECT count(*) FROM recsys.ratings)"
            )
        ).one()
        genres = conn.execute(sa.text("SELECT genres FROM recsys.movies WHERE movie_id = 1")).scalar()
        unknown = conn.execute(sa.text("SELECT release_year FROM recsys.movies WHERE movie_id = 267")).scalar()
    assert tuple(counts) == (943, 1682, 100_000)
    assert genres == ["Animation", "Children's", "Comedy"]
    assert unknown is None


def test_feature_store_reads_back_as_parsed(db_engine, archive):
    from recsys.config import OFFICIAL_UDATA_SHA256

    parsed = read_archive(archive, OFFICIAL_UDATA_SHA256)
    stored = load_movielens(db_engine)
    assert stored.fingerprint == parsed.fingerprint
    pd.testing.assert_frame_equal(stored.users, parsed.users, check_dtype=False)
    pd.testing.assert_frame_equal(
        stored.ratings.reset_index(drop=True),
        parsed.ratings.sort_values(["user_id", "movie_id"]).reset_index(drop=True),
        check_dtype=False,
    )
    assert stored.movies["genres"].tolist() == parsed.movies["genres"].tolist()


def test_rerun_is_idempotent(empty_db_url, synthetic):
    path, sha = synthetic
    settings = make_settings(data_sha256=sha)
    first = ingest(settings, empty_db_url, source=str(path))
    state = snapshot(empty_db_url)
    second = ingest(settings, empty_db_url, source=str(path))
    assert first.loaded and not second.loaded
    assert snapshot(empty_db_url) == state
    forced = ingest(settings, empty_db_url, source=path.as_uri(), force=True)  # file:// URL too
    assert forced.loaded
    assert snapshot(empty_db_url)[:6] == state[:6]


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda m: m.__setitem__("u.data", m["u.data"] + b"1\t2\t3\n"), "expected 4"),
        (lambda m: m.pop("u.item"), "missing member"),
    ],
)
def test_bad_archive_leaves_database_exactly_as_before(empty_db_url, synthetic, tmp_path, edit, error):
    path, sha = synthetic
    ingest(make_settings(data_sha256=sha), empty_db_url, source=str(path))
    before = snapshot(empty_db_url)
    members = synthetic_members(seed=1)
    edit(members)
    bad = write_archive(tmp_path / "bad.zip", members)
    with pytest.raises(DataError, match=error):
        ingest(make_settings(data_sha256=""), empty_db_url, source=str(bad), force=True)
    assert snapshot(empty_db_url) == before


def test_failure_inside_the_load_transaction_rolls_back(empty_db_url, synthetic):
    """A row the database rejects half-way through COPY: nothing of the new load remains."""
    path, sha = synthetic
    ingest(make_settings(data_sha256=sha), empty_db_url, source=str(path))
    before = snapshot(empty_db_url)
    data = read_archive(path, sha)
    orphan = pd.DataFrame({"user_id": [9999], "movie_id": [1], "rating": [4], "rated_at": data.ratings["rated_at"][:1]})
    broken = replace(data, ratings=pd.concat([data.ratings, orphan], ignore_index=True), fingerprint="x" * 64)
    engine = make_engine(empty_db_url)
    with pytest.raises(DataError, match="rejected the load, nothing was changed: .*ratings_user_id_fkey"):
        replace_movielens(engine, broken, "test")
    engine.dispose()
    assert snapshot(empty_db_url) == before


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", root
    server.shutdown()


def test_download_over_http(empty_db_url, synthetic, http_root, tmp_path):
    path, sha = synthetic
    base, root = http_root
    (root / "ml-100k.zip").write_bytes(path.read_bytes())
    settings = make_settings(data_sha256=sha, home=tmp_path / "home")
    result = ingest(settings, empty_db_url, source=f"{base}/ml-100k.zip")
    assert result.loaded and result.ratings == 450
    assert (settings.download_dir / "ml-100k.zip").is_file()
    assert not list(settings.download_dir.glob("*.part"))


def test_http_404_is_not_retried_and_changes_nothing(empty_db_url, http_root, tmp_path):
    base, _ = http_root
    before = snapshot(empty_db_url)
    with pytest.raises(DownloadError, match="404"):
        ingest(make_settings(home=tmp_path / "home"), empty_db_url, source=f"{base}/missing.zip")
    assert snapshot(empty_db_url) == before


def test_unreachable_url(empty_db_url, tmp_path):
    settings = make_settings(home=tmp_path / "home", download_retries=2, download_timeout_s=2)
    with pytest.raises(DownloadError, match="after 2 attempts"):
        ingest(settings, empty_db_url, source="http://127.0.0.1:9/ml-100k.zip")


def test_database_down(synthetic):
    path, sha = synthetic
    with pytest.raises(DatabaseUnavailable, match="cannot connect to the database at 127.0.0.1:1/recsys"):
        ingest(make_settings(data_sha256=sha), "postgresql://postgres@127.0.0.1:1/recsys", source=str(path))


def test_migrations_are_idempotent(empty_db_url):
    from recsys.db.migrate import migrate

    assert migrate(empty_db_url) == []


# ---------------------------------------------------------------- what a user sees (#13 items 7, 8, 9, 16)


def real_members(archive: Path) -> dict[str, bytes]:
    """The real archive's members by bare name, for a test to break one and write a new zip."""
    with zipfile.ZipFile(archive) as zf:
        return {i.filename.rsplit("/", 1)[-1]: zf.read(i) for i in zf.infolist() if not i.is_dir()}


@pytest.fixture(scope="module")
def loaded_url(admin_url: str, archive: Path) -> Iterator[str]:
    """A database holding the real ML-100K, which the failing ingests below must leave as it is."""
    url = create_database(admin_url, "recsys_test_loaded")
    ingest(make_settings(), url, source=str(archive))
    yield url
    drop_database(admin_url, url)


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`recsys` as a user runs it: no RECSYS_* settings but the given ones, a throwaway home."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    full = {**clean, "RECSYS_HOME": str(tmp_path / "home"), **env}
    return subprocess.run([str(RECSYS), *args], capture_output=True, text=True, env=full, timeout=300)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def _first_timestamp(stamp: bytes):
    def edit(content: bytes) -> bytes:
        first, rest = content.split(b"\n", 1)
        return b"\t".join([*first.split(b"\t")[:3], stamp]) + b"\n" + rest

    return edit


@pytest.mark.parametrize(
    ("member", "edit", "env", "message"),
    [
        (
            "u.genre",
            lambda b: b.replace(b"Action|1", b"Action|one"),
            {},
            "u.genre line 2: genre index 'one' is not an integer",
        ),
        ("u.info", lambda b: b.replace(b"100000 ratings", b"lots ratings"), {}, "u.info line 3: count 'lots' is not"),
        (
            "u.data",
            _first_timestamp(b"99999999999999999"),
            {"RECSYS_DATA_SHA256": ""},
            "u.data line 1: timestamp 99999999999999999 is not",
        ),
        (
            "u.data",
            _first_timestamp(b"-99999999999"),
            {"RECSYS_DATA_SHA256": ""},
            "u.data line 1: timestamp -99999999999",
        ),
        ("u.item", lambda b: b.replace(b"Toy Story", b"Toy\x00Story", 1), {}, "u.item line 1: contains a NUL byte"),
        ("u.item", lambda b: b.decode("latin-1").encode("utf-8"), {}, "u.item line 543: is UTF-8 encoded"),
    ],
    ids=["genre-index", "info-count", "huge-timestamp", "negative-timestamp", "nul-in-title", "utf8-item"],
)
def test_broken_archive_gives_one_line_and_changes_nothing(loaded_url, archive, tmp_path, member, edit, env, message):
    members = real_members(archive)
    members[member] = edit(members[member])
    bad = write_archive(tmp_path / "bad.zip", members)
    before = snapshot(loaded_url)
    done = cli(tmp_path, "ingest", "--source", str(bad), "--force", RECSYS_DATABASE_URL=loaded_url, **env)
    assert message in one_error_line(done)
    assert snapshot(loaded_url) == before


def test_oversized_member_is_refused_before_it_is_read(loaded_url, archive, tmp_path):
    """The real archive but u.data packs 48 MiB into under 100 KB: refused on its declared size."""
    members = real_members(archive)
    members.pop("u.data")
    bomb = write_archive(tmp_path / "bomb.zip", members)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("ml-100k/u.data", "w") as out:
        for _ in range(48):
            out.write(bytes(1 << 20))
    assert zipfile.ZipFile(bomb).getinfo("ml-100k/u.data").compress_size < 100_000
    before = snapshot(loaded_url)
    done = cli(tmp_path, "ingest", "--source", str(bomb), "--force", RECSYS_DATABASE_URL=loaded_url)
    line = one_error_line(done)
    assert "member ml-100k/u.data declares 50,331,648 bytes uncompressed" in line
    assert "RECSYS_MAX_MEMBER_BYTES" in line
    assert snapshot(loaded_url) == before


def test_member_size_limit_is_a_setting(loaded_url, archive, tmp_path):
    before = snapshot(loaded_url)
    done = cli(
        tmp_path, "ingest", "--source", str(archive), RECSYS_DATABASE_URL=loaded_url, RECSYS_MAX_MEMBER_BYTES="1000000"
    )
    assert "over the limit of 1,000,000 bytes" in one_error_line(done)
    assert snapshot(loaded_url) == before


@pytest.mark.parametrize(
    ("member", "old", "new", "sql", "value"),
    [
        (
            "u.item",
            b"1|Toy Story (1995)|",
            b"1|Toy Story 1 (1995)|",
            "SELECT title FROM recsys.movies WHERE movie_id = 1",
            "Toy Story 1 (1995)",
        ),
        (
            "u.user",
            b"1|24|M|technician|85711",
            b"1|25|M|technician|85711",
            "SELECT age FROM recsys.users WHERE user_id = 1",
            25,
        ),
    ],
    ids=["u.item", "u.user"],
)
def test_a_changed_side_file_is_loaded_not_already_loaded(
    empty_db_url, archive, tmp_path, member, old, new, sql, value
):
    assert ingest(make_settings(), empty_db_url, source=str(archive)).loaded
    members = real_members(archive)
    assert old in members[member]
    members[member] = members[member].replace(old, new, 1)
    changed = write_archive(tmp_path / "changed.zip", members)
    done = cli(tmp_path, "ingest", "--source", str(changed), RECSYS_DATABASE_URL=empty_db_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"loaded: 943 users, 1682 movies, 100000 ratings (sha256(u.data) {OFFICIAL_UDATA_SHA256[:12]}"
    )
    engine = make_engine(empty_db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(sql)).scalar() == value
    engine.dispose()
    again = cli(tmp_path, "ingest", "--source", str(changed), RECSYS_DATABASE_URL=empty_db_url)
    assert again.stdout.startswith("already loaded: "), again.stderr


def test_missing_local_archive_fails_at_once_saying_what_to_set(loaded_url, tmp_path):
    missing = tmp_path / "nowhere" / "ml-100k.zip"
    for args, env in ((["--source", str(missing)], {}), ([], {"RECSYS_DATA_URL": missing.as_uri()})):
        done = cli(tmp_path, "ingest", *args, RECSYS_DATABASE_URL=loaded_url, **env)
        line = one_error_line(done)
        assert f"data archive not found: {missing}" in line and "--source" in line and "RECSYS_DATA_URL" in line


def test_ingest_task_fails_a_missing_local_archive_without_retries(empty_db_url, tmp_path):
    """The DAG task's wrapper turns it into AirflowFailException: Airflow does not retry it."""
    # In a child process, as a task runs: the DAG bundle on sys.path (as Airflow puts it), its own AIRFLOW_HOME.
    task = (
        "import sys; sys.path.insert(0, 'dags')\n"
        "from movielens_common import user_errors_fail_fast\n"
        "from recsys.config import Settings\n"
        "from recsys.ingest import ingest\n"
        "with user_errors_fail_fast():\n"
        "    ingest(Settings(), sys.argv[1], source=sys.argv[2])\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    missing = str(tmp_path / "ml-100k.zip")
    done = subprocess.run(
        [sys.executable, "-c", task, empty_db_url, missing],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "airflow.sdk.exceptions.AirflowFailException: DataError: data archive not found" in done.stderr, done.stderr


def test_pipeline_checks_the_archive_path_before_starting_airflow(tmp_path):
    missing = tmp_path / "ml-100k.zip"
    env = {
        **os.environ,
        "RECSYS_DATA_URL": str(missing),
        "RECSYS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",  # never reached if the check works
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
    }
    done = subprocess.run(
        ["bash", "scripts/pipeline.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"error: data archive not found: {missing}; point --source or RECSYS_DATA_URL at a copy of the data set's archive, "
        "e.g. ml-100k.zip (a path, file:// or https URL; RECSYS_DATASET names its layout)"
    ]


def test_no_network_fails_fast_naming_source_and_data_url(loaded_url, tmp_path):
    """A host that cannot be resolved stands in for a machine without network (.invalid never resolves).

    One stderr line also means no retries: each retry logs a warning before its backoff (1 + 2 + 4 s).
    """
    done = cli(
        tmp_path,
        "ingest",
        RECSYS_DATABASE_URL=loaded_url,
        RECSYS_DATA_URL="https://files.grouplens.invalid/datasets/movielens/ml-100k.zip",
    )
    line = one_error_line(done)
    assert "cannot resolve files.grouplens.invalid" in line and "--source" in line and "RECSYS_DATA_URL" in line


def test_readers_never_wait_on_a_reload(loaded_url, archive, tmp_path):
    """While `ingest --force` reloads the store, a reader with the API's kind of timeout always answers."""
    engine = make_engine(loaded_url)
    answers: list[tuple] = []
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SET statement_timeout = '500ms'"))  # the API gives up after 2 s
            while not stop.is_set():
                try:
                    answers.append(
                        conn.execute(
                            sa.text(
                                "SELECT (SELECT count(*) FROM recsys.movies), (SELECT count(*) FROM recsys.ratings "
                                "WHERE user_id = 17), (SELECT title FROM recsys.movies WHERE movie_id = 50)"
                            )
                        ).one()
                    )
                    conn.commit()
                except sa.exc.DBAPIError as exc:
                    errors.append(str(exc.orig).splitlines()[0])
                    conn.rollback()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        done = cli(tmp_path, "ingest", "--force", "--source", str(archive), RECSYS_DATABASE_URL=loaded_url)
    finally:
        stop.set()
        reader.join(timeout=30)
        engine.dispose()
    assert done.returncode == 0, done.stderr[-2000:]
    assert errors == [], f"{len(errors)} of {len(errors) + len(answers)} reads failed, e.g. {errors[:2]}"
    assert len(answers) > 10 and set(answers) == {(1682, 28, "Star Wars (1977)")}
