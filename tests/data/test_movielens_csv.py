"""The dataset seam and the MovieLens CSV adapter: layouts recognised, bad input refused in one line.

Synthetic archives in the exact layout of ml-latest-small / 25M / 32M (recsys/data/synthetic.py);
the real ml-latest-small runs end to end in tests/data/test_real_csv.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.config import MAX_MEMBER_BYTES
from recsys.data.adapters import HALF_STARS, read_dataset
from recsys.data.synthetic import csv_fingerprint, synthetic_csv_members, synthetic_members, write_archive
from recsys.db.engine import make_engine
from recsys.db.store import load_movielens
from recsys.errors import DataError
from recsys.ingest import ingest
from tests.support.db import make_settings, snapshot

CSV_FOLDER = "ml-latest-small"


def _csv(tmp_path: Path, edit=None, name: str = "csv.zip") -> Path:
    members = synthetic_csv_members()
    if edit is not None:
        edit(members)
    return write_archive(tmp_path / name, members, folder=CSV_FOLDER)


def _read(path: Path, dataset: str = "ml-csv", **kwargs):
    return read_dataset(path, dataset, kwargs.pop("sha", None), max_member_bytes=kwargs.pop("limit", MAX_MEMBER_BYTES))


def test_csv_archive_parses_half_stars_no_demographics_and_years_from_titles(tmp_path):
    data = _read(_csv(tmp_path))
    assert data.dataset == "ml-csv" and data.scale == HALF_STARS
    assert list(data.users.columns) == ["user_id"] and len(data.users) == 30
    assert len(data.movies) == 40 and len(data.ratings) == 450
    assert set(data.ratings["rating"]) <= {x / 2 for x in range(1, 11)}
    first, no_genres, no_year = data.movies.iloc[0], data.movies.iloc[1], data.movies.iloc[2]
    assert first.title == "Movie 7, The (1957)" and first.release_year == 1957  # quoted, with a comma
    assert no_genres.genres == [] and no_year.release_year is None or str(no_year.release_year) == "<NA>"
    assert data.split_tests.empty


def test_the_layout_is_recognised_and_the_wrong_adapter_refused(tmp_path):
    csv_zip = _csv(tmp_path)
    ml100k = write_archive(tmp_path / "ml-100k.zip", synthetic_members())
    assert _read(csv_zip, "auto").dataset == "ml-csv"
    assert _read(ml100k, "auto", sha="").dataset == "ml-100k"
    with pytest.raises(DataError, match=r"in the MovieLens CSV .* layout .*set RECSYS_DATASET=ml-csv"):
        _read(csv_zip, "ml-100k")
    with pytest.raises(DataError, match=r"in the MovieLens 100K layout .*set RECSYS_DATASET=ml-100k"):
        _read(ml100k, "ml-csv")


def _replace(member: str, old: bytes, new: bytes):
    def edit(members: dict[str, bytes]) -> None:
        assert old in members[member]
        members[member] = members[member].replace(old, new, 1)

    return edit


def _rating_line(members: dict[str, bytes], line: int) -> bytes:
    return members["ratings.csv"].splitlines()[line - 1]


def _set_rating(value: bytes):
    def edit(members: dict[str, bytes]) -> None:
        row = _rating_line(members, 3).split(b",")
        members["ratings.csv"] = members["ratings.csv"].replace(
            _rating_line(members, 3), b",".join([*row[:2], value, row[3]])
        )

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_rating(b"5.5"), r"ratings\.csv line 3: rating 5\.5 is outside 0\.5-5 in steps of 0\.5"),
        (_set_rating(b"0"), r"ratings\.csv line 3: rating 0 is outside 0\.5-5"),
        (_set_rating(b"3.25"), r"ratings\.csv line 3: rating 3\.25 is outside"),
        (_set_rating(b"four"), r"ratings\.csv line 3: rating 'four' is not a number"),
        (
            _replace("ratings.csv", b"userId,movieId,rating,timestamp", b"userId,movieId,rating"),
            r"ratings\.csv line 1: header is 'userId,movieId,rating', expected 'userId,movieId,rating,timestamp'",
        ),
        (
            _replace("ratings.csv", b"userId,movieId,rating,timestamp", b"userId,movieId,rating,timestamp,extra"),
            r"ratings\.csv line 1: header is .*extra.* \(a missing, extra or renamed column\)",
        ),
        (
            _replace("movies.csv", b"movieId,title,genres", b"movieId,title"),
            r"movies\.csv line 1: header is 'movieId,title', expected 'movieId,title,genres'",
        ),
        (
            lambda m: m.__setitem__("ratings.csv", m["ratings.csv"] + b"1,7,4.0,1200000000,9\n"),
            r"ratings\.csv line 452: expected 4 comma-separated fields, got 5",
        ),
        (
            lambda m: m.__setitem__("ratings.csv", m["ratings.csv"] + b"1,7,4.0\n"),
            r"ratings\.csv line 452: expected 4 comma-separated fields, got 3",
        ),
        (
            lambda m: m.__setitem__("ratings.csv", m["ratings.csv"] + b"3,9999,4.0,1200000000\n"),
            r"ratings\.csv line 452: unknown movie id 9999 \(not in movies\.csv\)",
        ),
        (  # the ids as integers: a row of them and float ratings once read back as "user 1.0"
            lambda m: m.__setitem__("ratings.csv", m["ratings.csv"] + _rating_line(m, 2) + b"\n"),
            r"ratings\.csv: user 1 rates movie \d+ more than once",
        ),
        (
            _replace("movies.csv", b"Movie 14", "Mis\xe9rables 14".encode("latin-1")),
            r"movies\.csv line 3: is not UTF-8",
        ),
        (lambda m: m.pop("movies.csv"), r"missing member file\(s\): movies\.csv"),
        (
            lambda m: m.__setitem__("ratings.csv", m["ratings.csv"] + _rating_line(m, 2) + b"\n"),
            r"^ratings\.csv: user \d+ rates movie \d+ more than once$",  # ids, not 12.0: the rating is a float
        ),
    ],
)
def test_bad_csv_input_is_one_line_naming_file_and_line(tmp_path, edit, message):
    with pytest.raises(DataError, match=message):
        _read(_csv(tmp_path, edit))


def test_member_size_cap_and_fingerprint(tmp_path):
    path = _csv(tmp_path)
    with pytest.raises(
        DataError, match=r"member ml-latest-small/ratings\.csv declares [\d,]+ bytes .*not MovieLens CSV"
    ):
        _read(path, limit=1000)
    with pytest.raises(DataError, match=r"fingerprint mismatch: sha256\(ratings\.csv\)"):
        _read(path, sha="0" * 64)
    assert _read(path, sha=csv_fingerprint(synthetic_csv_members())).fingerprint == csv_fingerprint(
        synthetic_csv_members()
    )


def test_csv_load_round_trips_and_bad_input_leaves_the_database_as_it_was(empty_db_url, tmp_path):
    settings = make_settings(dataset="ml-csv", data_sha256="", home=tmp_path / "home")
    result = ingest(settings, empty_db_url, source=str(_csv(tmp_path)))
    assert (result.dataset, result.users, result.movies, result.ratings) == ("ml-csv", 30, 40, 450)
    back = load_movielens(make_engine(empty_db_url))
    assert back.dataset == "ml-csv" and back.scale == HALF_STARS and list(back.users.columns) == ["user_id"]
    assert sorted(back.ratings["rating"].unique()) == sorted(_read(_csv(tmp_path)).ratings["rating"].unique())
    before = snapshot(empty_db_url)
    bad = _csv(tmp_path, _set_rating(b"6.0"), name="bad.zip")
    env = {
        **os.environ,
        "RECSYS_DATABASE_URL": empty_db_url,
        "RECSYS_DATASET": "ml-csv",
        "RECSYS_HOME": str(tmp_path / "home"),
    }
    for args in (
        ["ingest", "--source", str(bad), "--force"],
        ["ingest", "--source", str(write_archive(tmp_path / "o.zip", synthetic_members()))],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "recsys.cli", *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: "), done.stderr
        assert snapshot(empty_db_url) == before
