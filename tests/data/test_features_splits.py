"""Feature definitions and the split specs, on the real feature store."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.data.adapters import HALF_STARS, STARS
from recsys.data.features import age_bucket, movie_features, training_statistics, user_features, zip_prefix
from recsys.data.splits import make_split
from recsys.db.store import load_movielens
from recsys.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def store(db_engine):
    return load_movielens(db_engine)


def test_age_buckets_and_zip_prefix():
    assert age_bucket(pd.Series([7, 17, 18, 24, 25, 49, 50, 55, 56, 73])).tolist() == [0, 0, 1, 1, 2, 4, 5, 5, 6, 6]
    assert zip_prefix(pd.Series(["55414", "t8h1n", "", None])).tolist() == ["554", "T8H", "[UNK]", "[UNK]"]


def test_feature_frames_cover_every_row(store):
    users, movies = user_features(store.users), movie_features(store.movies)
    assert len(users) == 943 and users["age_bucket"].between(0, 6).all()
    assert len(movies) == 1682
    unknown = movies[movies["movie_id"] == "267"].iloc[0]
    assert unknown.release_year == 0 and unknown.decade == 0
    assert movies.set_index("movie_id").loc["1", "decade"] == 1990


@pytest.mark.parametrize("name", ["u1", "u3", "ua"])
def test_canonical_split_sizes(store, name):
    split = make_split(name, store.ratings, store.split_tests)
    expected_test = 9430 if name == "ua" else 20000
    assert len(split.test) == expected_test and len(split.train) == 100_000 - expected_test
    keys = lambda f: set(zip(f.user_id, f.movie_id, strict=False))  # noqa: E731
    assert not keys(split.train) & keys(split.test)


def test_random_split_is_seeded(store):
    a = make_split("random:0.1:7", store.ratings)
    b = make_split("random:0.1:7", store.ratings)
    c = make_split("random:0.1:8", store.ratings)
    assert a.test.equals(b.test) and not a.test.equals(c.test)
    assert 9_000 < len(a.test) < 11_000


def test_temporal_split_tests_on_the_future(store):
    split = make_split("temporal:0.2", store.ratings)
    assert len(split.test) == 20_000
    assert split.train["rated_at"].max() <= split.test["rated_at"].min()


def test_statistics_come_from_training_data_only(store):
    split = make_split("u1", store.ratings, store.split_tests)
    stats = training_statistics(split.train)
    counts = stats["users"].set_index("user_id")["user_count"]
    assert counts.sum() == len(split.train)
    assert stats["global_mean"] == pytest.approx(split.train["rating"].mean())


def test_user_supplied_files(store, tmp_path):
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("1\t1\t5\t881250949\n2\t1\t3\t881250950\n")
    test.write_text("1\t2\t4\t881250951\n")
    split = make_split(f"files:{train},{test}", store.ratings)
    assert len(split.train) == 2 and len(split.test) == 1
    test.write_text("5000\t2\t4\t881250951\n")
    with pytest.raises(DataError, match=r"test\.tsv: 1 user_id value\(s\) not in the feature store, e\.g\. \[5000\]"):
        make_split(f"files:{train},{test}", store.ratings)


def test_user_supplied_files_take_the_data_sets_rating_scale(store, tmp_path):
    """A half star is a rating of a CSV data set's files: split, and a typo in an ML-100K one."""
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("1\t1\t4.5\t881250949\n2\t1\t0.5\t881250950\n")
    test.write_text("1\t2\t3\t881250951\n")
    split = make_split(f"files:{train},{test}", store.ratings, scale=HALF_STARS)
    assert split.train["rating"].tolist() == [4.5, 0.5] and split.test["rating"].tolist() == [3.0]
    with pytest.raises(DataError, match=r"train\.tsv line 1: rating '4\.5' is not an integer"):
        make_split(f"files:{train},{test}", store.ratings, scale=STARS)
    train.write_text("1\t1\t5.5\t881250949\n")
    with pytest.raises(DataError, match=r"train\.tsv line 1: rating 5\.5 is outside 0\.5-5 in steps of 0\.5"):
        make_split(f"files:{train},{test}", store.ratings, scale=HALF_STARS)


def test_user_supplied_files_must_not_overlap(store, tmp_path):
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("1\t1\t5\t881250949\n2\t1\t3\t881250950\n")
    test.write_text("1\t2\t4\t881250951\n2\t1\t4\t881250952\n")  # user 2 x movie 1 is in both
    with pytest.raises(DataError, match=r"1 \(user, movie\) pair\(s\) are in both .* e\.g\. user 2, movie 1"):
        make_split(f"files:{train},{test}", store.ratings)


@pytest.mark.parametrize("spec", ["u9", "random:2", "random:x", "temporal:0.1:3:4", "files:onlyone"])
def test_bad_split_specs(store, spec):
    with pytest.raises(ConfigError):
        make_split(spec, store.ratings, store.split_tests)


@pytest.mark.parametrize(("kind", "column"), [("cold_movies", "movie_id"), ("cold_users", "user_id")])
def test_cold_start_splits_hold_out_whole_movies_or_users(store, kind, column):
    base = make_split("u1", store.ratings, store.split_tests)
    split = make_split(f"{kind}:u1:50:7", store.ratings, store.split_tests)
    assert split.name == f"{kind}:u1:50:7"
    assert split.test[column].nunique() == 50 and not set(split.test[column]) & set(split.train[column])
    assert len(split.train) + len(split.test) == len(base.train), "both parts come from u1.base only"
    assert make_split(f"{kind}:u1:50:7", store.ratings, store.split_tests).test.equals(split.test)
    assert make_split(f"{kind}:temporal:0.1:50:7", store.ratings, store.split_tests).name.startswith(kind)
    with pytest.raises(ConfigError):
        make_split(f"{kind}:u1:5000:7", store.ratings, store.split_tests)


def test_early_stopping_slice_of_a_time_ordered_split_is_its_newest_ratings(store):
    """The TFRS model early-stops on later ratings than it fits, as the test part asks it to."""
    from recsys.model.train import validation_slice

    temporal = make_split("temporal:0.2", store.ratings)
    fit, valid = validation_slice(temporal, 0.1, seed=42)
    assert len(valid) == round(len(temporal.train) * 0.1) and len(fit) + len(valid) == len(temporal.train)
    assert valid["rated_at"].min() >= fit["rated_at"].max()

    random = make_split("u1", store.ratings, store.split_tests)
    fit, valid = validation_slice(random, 0.1, seed=42)
    assert valid["rated_at"].min() < fit["rated_at"].max()  # a random split keeps a random slice
    assert validation_slice(random, 0.0, seed=42)[1].empty
