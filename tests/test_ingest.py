"""Ingestion into the real PostgreSQL: counts, idempotence, and failures that change nothing."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import make_settings

from recsys.data.movielens import read_archive
from recsys.data.synthetic import fingerprint, synthetic_members, write_archive
from recsys.db.engine import make_engine
from recsys.db.store import load_movielens, replace_movielens
from recsys.errors import DatabaseUnavailable, DataError, DownloadError
from recsys.ingest import ingest

SNAPSHOT_SQL = """
SELECT (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies),
       (SELECT count(*) FROM recsys.ratings), (SELECT count(*) FROM recsys.split_tests),
       (SELECT md5(string_agg(user_id || ':' || movie_id || ':' || rating || ':' || rated_at, ','
                              ORDER BY user_id, movie_id)) FROM recsys.ratings),
       (SELECT md5(string_agg(movie_id || title || coalesce(release_year, 0) || array_to_string(genres, '/'), ','
                              ORDER BY movie_id)) FROM recsys.movies),
       (SELECT count(*) FROM recsys.datasets)
"""


def snapshot(url: str) -> tuple:
    engine = make_engine(url)
    with engine.connect() as conn:
        row = tuple(conn.execute(sa.text(SNAPSHOT_SQL)).one())
    engine.dispose()
    return row


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
