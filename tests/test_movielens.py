"""Parsing and validating the archive: the real one, and small ones broken on purpose."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from recsys.config import OFFICIAL_UDATA_SHA256
from recsys.data.movielens import read_archive, read_ratings_file
from recsys.data.synthetic import fingerprint, synthetic_members, write_archive
from recsys.errors import DataError


@pytest.fixture(scope="module")
def ml(archive: Path):
    return read_archive(archive, OFFICIAL_UDATA_SHA256)


def test_real_archive_sizes_and_fingerprint(ml):
    assert (len(ml.users), len(ml.movies), len(ml.ratings)) == (943, 1682, 100_000)
    assert ml.fingerprint == OFFICIAL_UDATA_SHA256
    sizes = ml.split_tests.groupby("split").size().to_dict()
    assert sizes == {"u1": 20000, "u2": 20000, "u3": 20000, "u4": 20000, "u5": 20000, "ua": 9430, "ub": 9430}


def test_known_traps_are_handled(ml):
    unknown = ml.movies.set_index("movie_id").loc[267]
    assert unknown.title == "unknown" and unknown.release_date is None
    assert ml.movies["title"].duplicated().sum() == 18
    chasing_amy = ml.movies[ml.movies["title"] == "Chasing Amy (1997)"]
    assert sorted(chasing_amy["movie_id"]) == [246, 268]
    toy_story = ml.movies.set_index("movie_id").loc[1]
    assert toy_story.genres == ["Animation", "Children's", "Comedy"] and toy_story.release_year == 1995
    # latin-1: accented titles decode instead of failing
    assert ml.movies["title"].str.contains("é").any()
    assert str(ml.ratings["rated_at"].dt.tz) == "UTC"


def test_canonical_folds_partition_the_ratings(ml):
    folds = ml.split_tests[ml.split_tests["split"].isin(["u1", "u2", "u3", "u4", "u5"])]
    assert not folds.duplicated(["user_id", "movie_id"]).any()
    assert len(folds) == len(ml.ratings)


def _broken(tmp_path: Path, edit=None, drop: str | None = None) -> Path:
    members = synthetic_members()
    if edit:
        edit(members)
    if drop:
        members.pop(drop)
    return write_archive(tmp_path / "ml.zip", members)


def test_synthetic_archive_is_valid(tmp_path):
    members = synthetic_members()
    data = read_archive(write_archive(tmp_path / "ml.zip", members), fingerprint(members))
    assert len(data.users) == 30 and len(data.movies) == 40 and len(data.ratings) == 450


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.__setitem__("u.data", m["u.data"] + b"1\t2\t3\n"), r"u\.data line 451: expected 4"),
        (
            lambda m: m.__setitem__("u.data", m["u.data"] + b"1\t2\t9\t874000000\n"),
            r"line 451: rating 9 is outside 1-5",
        ),
        (lambda m: m.__setitem__("u.data", m["u.data"] + b"999\t2\t3\t874000000\n"), r"line 451: unknown user id 999"),
        (
            lambda m: m.__setitem__("u.data", m["u.data"] + b"1\tx\t3\t874000000\n"),
            r"line 451: movie id 'x' is not an integer",
        ),
        (lambda m: m.__setitem__("u.user", m["u.user"] + b"31|20|X|writer|12345\n"), r"u\.user line 31: gender 'X'"),
        (
            lambda m: m.__setitem__("u.item", m["u.item"].replace(b"01-Jan-1951", b"1951-01-01", 1)),
            r"u\.item line 1: release date",
        ),
        (lambda m: m.__setitem__("u.info", b"30 users\n40 items\n999 ratings\n"), r"u\.info states 999 ratings"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, edit, message):
    path = _broken(tmp_path, edit)
    with pytest.raises(DataError, match=message):
        read_archive(path, None)


def test_missing_member(tmp_path):
    with pytest.raises(DataError, match=r"missing member file\(s\): u\.user"):
        read_archive(_broken(tmp_path, drop="u.user"), None)


def test_wrong_fingerprint(tmp_path):
    with pytest.raises(DataError, match="fingerprint mismatch"):
        read_archive(_broken(tmp_path), OFFICIAL_UDATA_SHA256)


def test_truncated_zip(tmp_path, archive):
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(archive.read_bytes()[:1_000_000])
    with pytest.raises(DataError, match="not a valid zip archive"):
        read_archive(truncated, OFFICIAL_UDATA_SHA256)


def test_corrupt_member_bytes(tmp_path):
    path = _broken(tmp_path)
    info = zipfile.ZipFile(path).getinfo("ml-100k/u.data")
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 20  # inside the compressed data
    for i in range(start, start + 40):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt"):
        read_archive(path, None)


def test_not_a_file(tmp_path):
    with pytest.raises(DataError, match="archive not found"):
        read_archive(tmp_path / "nope.zip", None)


def test_user_ratings_file(tmp_path):
    good = tmp_path / "train.tsv"
    good.write_text("1\t2\t5\t881250949\n3\t4\t1\t881250950\n")
    frame = read_ratings_file(good)
    assert frame[["user_id", "movie_id", "rating"]].values.tolist() == [[1, 2, 5], [3, 4, 1]]
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\t2\t5\t881250949\n1 2 5 881250949\n")
    with pytest.raises(DataError, match=r"bad\.tsv line 2: expected 4"):
        read_ratings_file(bad)
