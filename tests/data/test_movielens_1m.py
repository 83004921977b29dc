"""The ML-1M adapter on a synthetic archive in the release's exact layout (ml-1m/*.dat, ``::``, latin-1).

The real ml-1m.zip cannot be downloaded here; the adapter keeps its official address for users.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import MAX_MEMBER_BYTES
from recsys.data.adapters import STARS, read_dataset
from recsys.data.synthetic import synthetic_1m_members, synthetic_csv_members, write_archive
from recsys.db.engine import make_engine
from recsys.db.store import load_movielens
from recsys.errors import DataError
from recsys.ingest import ingest
from tests.support.db import make_settings, snapshot


def _archive(tmp_path: Path, edit=None, name: str = "ml-1m.zip") -> Path:
    members = synthetic_1m_members()
    if edit is not None:
        edit(members)
    return write_archive(tmp_path / name, members, folder="ml-1m")


def _read(path: Path, dataset: str = "ml-1m"):
    return read_dataset(path, dataset, "", max_member_bytes=MAX_MEMBER_BYTES)


def test_ml1m_archive_parses_demographics_codes_and_latin1_titles(tmp_path):
    data = _read(_archive(tmp_path))
    assert data.dataset == "ml-1m" and data.scale == STARS
    assert (len(data.users), len(data.movies), len(data.ratings)) == (30, 40, 450)
    user = data.users.set_index("user_id").loc[10]
    assert (user.gender, user.age, user.occupation) == ("M", 35, "K-12 student")  # occupation code 10
    assert data.movies.set_index("movie_id").loc[3].title == "Misérables 3 (1953)"
    assert data.movies.set_index("movie_id").loc[3].release_year == 1953
    assert _read(_archive(tmp_path), "auto").dataset == "ml-1m"


def _append(member: str, line: bytes):
    return lambda m: m.__setitem__(member, m[member] + line)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_append("ratings.dat", b"1::2::6::956703932\n"), r"ratings\.dat line 451: rating 6 is outside 1-5"),
        (
            _append("ratings.dat", b"1::99::4::956703932\n"),
            r"ratings\.dat line 451: unknown movie id 99 \(not in movies\.dat\)",
        ),
        (
            _append("ratings.dat", b"99::1::4::956703932\n"),
            r"ratings\.dat line 451: unknown user id 99 \(not in users\.dat\)",
        ),
        (_append("ratings.dat", b"1::2::4\n"), r"ratings\.dat line 451: expected 4 '::'-separated fields, got 3"),
        (_append("users.dat", b"31::M::25::21::12345\n"), r"users\.dat line 31: occupation code 21 is outside 0-20"),
        (
            _append("users.dat", b"31::M::30::1::12345\n"),
            r"users\.dat line 31: age 30 is not one of the release's age groups",
        ),
        (_append("movies.dat", b"41::Movie\x00 41 (1999)::Drama\n"), r"movies\.dat line 41: contains a NUL byte"),
        (lambda m: m.pop("users.dat"), r"missing member file\(s\): users\.dat"),
    ],
)
def test_bad_ml1m_input_is_one_line_naming_file_and_line(tmp_path, edit, message):
    with pytest.raises(DataError, match=message):
        _read(_archive(tmp_path, edit))


def test_a_csv_archive_is_not_read_as_ml1m(tmp_path):
    csv = write_archive(tmp_path / "csv.zip", synthetic_csv_members(), folder="ml-latest-small")
    with pytest.raises(DataError, match=r"in the MovieLens CSV .* layout .*not MovieLens 1M .*RECSYS_DATASET=ml-csv"):
        _read(csv)


def test_ml1m_loads_and_reads_back_with_its_side_features(empty_db_url, tmp_path):
    settings = make_settings(dataset="ml-1m", data_sha256="", home=tmp_path / "home")
    ingest(settings, empty_db_url, source=str(_archive(tmp_path)))
    back = load_movielens(make_engine(empty_db_url))
    assert back.dataset == "ml-1m"
    assert list(back.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert list(back.movies.columns) == ["movie_id", "title", "release_year", "genres"]
    before = snapshot(empty_db_url)
    with pytest.raises(DataError, match="rating 6 is outside"):
        ingest(
            settings,
            empty_db_url,
            source=str(_archive(tmp_path, _append("ratings.dat", b"1::2::6::956703932\n"), "bad.zip")),
            force=True,
        )
    assert snapshot(empty_db_url) == before
