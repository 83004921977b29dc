"""Parsing and validating the archive: the real one, and small ones broken on purpose."""

from __future__ import annotations

import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from recsys.config import OFFICIAL_UDATA_SHA256
from recsys.data.adapters import adapter, read_dataset
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


def _set_first_timestamp(members: dict[str, bytes], stamp: bytes) -> None:
    first, rest = members["u.data"].split(b"\n", 1)
    members["u.data"] = b"\t".join([*first.split(b"\t")[:3], stamp]) + b"\n" + rest


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
        (
            lambda m: m.__setitem__("u.genre", m["u.genre"].replace(b"Action|1", b"Action|one")),
            r"u\.genre line 2: genre index 'one' is not an integer",
        ),
        (
            lambda m: m.__setitem__("u.info", b"30 users\n40 items\nmany ratings\n"),
            r"u\.info line 3: count 'many' is not an integer",
        ),
        (
            lambda m: _set_first_timestamp(m, b"99999999999999999"),
            r"u\.data line 1: timestamp 99999999999999999 is not",
        ),
        (lambda m: _set_first_timestamp(m, b"-99999999999"), r"u\.data line 1: timestamp -99999999999 is not"),
        (
            lambda m: m.__setitem__("u.item", m["u.item"].replace(b"Movie 2 (", b"Movie\x00 2 (")),
            r"u\.item line 2: contains a NUL byte",
        ),
        (
            lambda m: m.__setitem__("u.item", m["u.item"].replace(b"Movie 3 (", "Misérables 3 (".encode())),
            r"u\.item line 3: is UTF-8 encoded .*latin-1",
        ),
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


def test_latin1_accents_are_not_mistaken_for_utf8(tmp_path):
    members = synthetic_members()
    members["u.item"] = members["u.item"].replace(b"Movie 3 (", "Misérables 3 (".encode("latin-1"))
    data = read_archive(write_archive(tmp_path / "ml.zip", members), None)
    assert data.movies.set_index("movie_id").loc[3].title.startswith("Misérables 3")


def test_every_member_read_is_fingerprinted(tmp_path):
    members = synthetic_members()
    before = read_archive(write_archive(tmp_path / "a.zip", members), None)
    members["u.user"] = members["u.user"][:-6] + b"54321\n"  # the last user's zip code
    after = read_archive(write_archive(tmp_path / "b.zip", members), None)
    assert set(before.member_sha256) == set(members) and before.member_sha256["u.data"] == before.fingerprint
    changed = {m for m in members if before.member_sha256[m] != after.member_sha256[m]}
    assert changed == {"u.user"} and after.fingerprint == before.fingerprint


def test_member_over_the_size_limit_is_not_read(tmp_path):
    path = _broken(tmp_path)
    with pytest.raises(DataError, match=r"member ml-100k/u\.data declares [\d,]+ bytes uncompressed, over the limit"):
        read_archive(path, None, max_member_bytes=1000)


def test_each_data_set_has_its_own_member_cap(tmp_path):
    """Unset, the cap is the adapter's: ML-100K's refuses a 39 MB u.data that ML-1M's cap would allow."""
    members = synthetic_members()
    members["u.data"] += b"1\t1\t1\t874000000\n" * (40 * 2**20 // 17)  # 16-byte rows
    path = write_archive(tmp_path / "big.zip", members)
    assert adapter("ml-100k").max_member_bytes < 40 * 2**20 < adapter("ml-1m").max_member_bytes
    with pytest.raises(
        DataError, match=r"u\.data declares 39,483,\d+ bytes uncompressed, over the limit of 33,554,432"
    ):
        read_dataset(path, "ml-100k", "")
    with pytest.raises(DataError, match=r"rates movie 1 more than once"):  # read past the cap: the rows are checked
        read_dataset(path, "ml-100k", "", max_member_bytes=64 * 2**20)


def test_zip_bomb_with_a_lying_size_header_stops_early(tmp_path):
    """u.data unpacks to 128 MiB but declares 1 KiB: reading stops at the declared size."""
    path = tmp_path / "bomb.zip"
    members = synthetic_members()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            if name != "u.data":
                zf.writestr(f"ml-100k/{name}", content)
        with zf.open("ml-100k/u.data", "w") as out:
            for _ in range(128):
                out.write(bytes(1 << 20))
    _declare_size(path, "ml-100k/u.data", 1024)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"member ml-100k/u\.data is corrupt \(Bad CRC-32"):
            read_archive(path, None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def _declare_size(path: Path, member: str, size: int) -> None:
    """Overwrite the uncompressed size in the member's local header and central directory entry."""
    info = zipfile.ZipFile(path).getinfo(member)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, info.header_offset + 22, size)
    central = raw.find(b"PK\x01\x02")
    while raw[central + 46 : central + 46 + len(member)] != member.encode():
        central = raw.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", raw, central + 24, size)
    path.write_bytes(bytes(raw))
