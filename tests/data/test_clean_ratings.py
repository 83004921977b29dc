"""The C-speed path for a clean ratings member: taken for clean data, the same frames, never laxer.

Every adapter's ratings are read both ways (the fast path forced off with monkeypatch) and
must be equal; each way a member can be unusual or wrong must send it to the line-by-line
parser (``read_clean`` returns None), which accepts it or names the line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recsys.config import MAX_MEMBER_BYTES
from recsys.data import movielens, movielens_1m, movielens_csv, own_csv
from recsys.data.adapters import HALF_STARS, STARS, read_dataset
from recsys.data.clean_ratings import read_clean
from recsys.data.synthetic import (
    synthetic_1m_members,
    synthetic_csv_members,
    synthetic_members,
    synthetic_own_members,
    write_archive,
)

LAYOUTS = {
    "ml-100k": (synthetic_members, "ml-100k", movielens),
    "ml-1m": (synthetic_1m_members, "ml-1m", movielens_1m),
    "ml-csv": (synthetic_csv_members, "ml-latest-small", movielens_csv),
    "own-csv": (synthetic_own_members, "", own_csv),
}


def _both_ways(path: Path, dataset: str, adapter_module, monkeypatch) -> tuple[pd.DataFrame, pd.DataFrame]:
    taken = []

    def spy(*args, **kwargs):
        frame = read_clean(*args, **kwargs)
        taken.append(frame is not None)
        return frame

    with monkeypatch.context() as patch:
        patch.setattr(adapter_module, "read_clean", spy)
        fast = read_dataset(path, dataset, "", max_member_bytes=MAX_MEMBER_BYTES).ratings
    assert taken == [True], "a clean ratings member must take the fast path"
    with monkeypatch.context() as patch:
        patch.setattr(adapter_module, "read_clean", lambda *a, **k: None)
        slow = read_dataset(path, dataset, "", max_member_bytes=MAX_MEMBER_BYTES).ratings
    return fast, slow


@pytest.mark.parametrize("dataset", LAYOUTS)
def test_each_layout_reads_the_same_ratings_both_ways(dataset, tmp_path, monkeypatch):
    members, folder, module = LAYOUTS[dataset]
    path = write_archive(tmp_path / f"{dataset}.zip", members(n_users=60, n_movies=80, per_user=20), folder=folder)
    fast, slow = _both_ways(path, dataset, module, monkeypatch)
    pd.testing.assert_frame_equal(fast, slow)
    assert len(fast) == 60 * 20


def test_the_real_ml100k_reads_the_same_both_ways(archive, monkeypatch):
    fast, slow = _both_ways(archive, "ml-100k", movielens, monkeypatch)
    pd.testing.assert_frame_equal(fast, slow)
    assert len(fast) == 100_000 and fast["rating"].dtype == "int64"


CLEAN_TSV = b"1\t10\t4\t881250949\n2\t20\t3\t881250950\n"
CLEAN_CSV = b"userId,movieId,rating,timestamp\n1,10,4.5,881250949\n2,20,3.0,881250950\n3,10,1,881250951\n"


def test_clean_members_are_read_at_c_speed():
    tsv = read_clean(CLEAN_TSV, sep=b"\t", scale=STARS, known_users={1, 2}, known_movies={10, 20})
    assert tsv is not None and tsv.drop(columns="rated_at").to_dict("list") == {
        "user_id": [1, 2], "movie_id": [10, 20], "rating": [4, 3]
    }  # fmt: skip
    assert tsv["rated_at"].tolist() == list(pd.to_datetime([881250949, 881250950], unit="s", utc=True))
    dat = read_clean(CLEAN_TSV.replace(b"\t", b"::"), sep=b"::", scale=STARS)
    assert dat is not None and dat.equals(tsv)
    csv = read_clean(CLEAN_CSV, sep=b",", scale=HALF_STARS, header=b"userId,movieId,rating,timestamp")
    assert csv is not None and csv["rating"].tolist() == [4.5, 3.0, 1.0] and csv["rating"].dtype == "float64"


@pytest.mark.parametrize(
    "body",
    [
        b"1.0\t10\t4\t881250949\n",  # pandas reads 1.0 as the id 1; the parser refuses it
        b"+1\t10\t4\t881250949\n",
        b'"1"\t10\t4\t881250949\n',
        b" 1\t10\t4\t881250949\n",
        b"1\t10\t4\t881250949\t7\n",  # an extra field (pandas would take the first as an index)
        b"1\t10\t4\n",
        b"1\t10\t4\t881250949\n\n2\t20\t3\t881250950\n",  # a blank line
        b"1\t10\t4\t881250949\r\n",
        b"1\t10\t6\t881250949\n",  # off the scale
        b"1\t10\t0\t881250949\n",
        b"1\t10\t4\t99999999999999\n",  # after 2262
        b"1\t10\t4\t881250949999999999999999\n",  # overflows int64
        b"3\t10\t4\t881250949\n",  # unknown user
        b"1\t30\t4\t881250949\n",  # unknown movie
        b"1\t\t4\t881250949\n",
        b"1\t10\t4\t881250949\n1\t10\t5\t881250950\n",  # rated twice: the parser names the line
        b"",
    ],
)
def test_anything_unusual_goes_to_the_line_by_line_parser(body):
    assert read_clean(body, sep=b"\t", scale=STARS, known_users={1, 2}, known_movies={10, 20}) is None


@pytest.mark.parametrize(
    "body",
    [
        b"userId,movieId,rating,timestamp\n1,10,3.50,881250949\n",  # a spelling the releases do not use
        b"userId,movieId,rating,timestamp\n1,10,3.7,881250949\n",
        b"userId,movieId,rating,timestamp\n1.5,10,3.5,881250949\n",
        b"userId,movieId,rating,timestamp\n1,10,3.5,8812509.49\n",  # a point outside the rating field
        b"userId,movieId,rating,timestamp\n0,10,3.5,881250949\n",  # ids are positive
        b"userId,movieId,rating\n1,10,3.5\n",  # another header
        b"userId, movieId, rating, timestamp\n1,10,3.5,881250949\n",
    ],
)
def test_a_half_star_member_that_is_not_plainly_clean_goes_to_the_parser(body):
    header = b"userId,movieId,rating,timestamp"
    assert read_clean(body, sep=b",", scale=HALF_STARS, header=header, positive_ids=True) is None
