"""Full-catalogue top-N metrics, checked against a case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys.model.topn import PROTOCOL, Catalogue, evaluate_topn, matrix_scores, top_k


def _case():
    """3 users x 5 movies. Training: user 1 rated 10, user 2 rated 10 and 11, user 3 rated 12."""
    train = pd.DataFrame({"user_id": [1, 2, 2, 3], "movie_id": [10, 10, 11, 12], "rating": [5, 4, 3, 2]})
    test = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 3],
            "movie_id": [11, 13, 12, 14, 10],
            "rating": [4, 5, 2, 4, 3],  # user 3 has no relevant test movie: not counted
        }
    )
    catalogue = Catalogue.from_frames([3, 1, 2], [14, 10, 11, 12, 13], train)
    # rows: users 1, 2, 3; columns: movies 10..14
    scores = np.array(
        [
            [9.0, 1.0, 5.0, 3.0, 0.0],  # user 1: unseen order 12, 13, 11, 14 (10 is seen)
            [9.0, 8.0, 2.0, 2.0, 1.0],  # user 2: unseen 12, 13 (tie: lower id first), 14
            [1.0, 2.0, 3.0, 4.0, 5.0],
        ]
    )
    return catalogue, test, matrix_scores(scores, catalogue)


def test_metrics_by_hand():
    catalogue, test, score = _case()
    m = evaluate_topn(score, catalogue, test, ks=(2,))
    # user 1: relevant {11, 13}; top 2 = [12, 13] -> 1 hit at rank 2.
    # user 2: relevant {14}; top 2 = [12, 13] -> no hit.
    assert m["topn_users"] == 2
    assert m["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    ideal1 = 1 + 1 / math.log2(3)
    assert m["ndcg@2"] == pytest.approx(((1 / math.log2(3)) / ideal1 + 0) / 2)
    assert m["hr@2"] == pytest.approx(0.5)
    # top-10 lists (all unseen): user 1 [12, 13, 11, 14], user 2 [12, 13, 14] -> 4 distinct of 5
    assert m["distinct@10"] == 4 and m["coverage@10"] == pytest.approx(4 / 5)
    # training popularity (share of the 3 training users): 10: 2/3, 11: 1/3, 12: 1/3, 13: 0, 14: 0
    assert m["novelty@10"] == pytest.approx((1 / 3 + 0 + 1 / 3 + 0 + 1 / 3 + 0 + 0) / 7)


def test_recall_is_capped_at_k_and_training_items_never_count():
    catalogue, test, _ = _case()
    # A method that puts the user's training movie first gains nothing from it.
    always_seen_first = matrix_scores(np.tile([100.0, 0, 0, 0, 0], (3, 1)), catalogue)
    m = evaluate_topn(always_seen_first, catalogue, test, ks=(1,))
    # user 1 rated 10 in training: it is skipped; ties among the rest go by movie id -> 11 (relevant)
    assert m["recall@1"] == pytest.approx((1 / 1 + 0) / 2)  # min(K=1, 2 relevant) = 1
    assert "Full-catalogue" in PROTOCOL and "min(K, relevant" in PROTOCOL


def test_a_k_beyond_the_catalogue_counts_the_whole_list():
    """A catalogue of 5 movies at K=10 (own data may have fewer movies than the K of 50): every unseen one is listed."""
    catalogue, test, score = _case()
    m = evaluate_topn(score, catalogue, test, ks=(10,))
    # user 1: [12, 13, 11, 14], relevant 13 and 11 at ranks 2 and 3; user 2: [12, 13, 14], 14 at rank 3
    assert m["recall@10"] == pytest.approx(1.0) and m["hr@10"] == pytest.approx(1.0)
    user1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx((user1 + 1 / math.log2(4)) / 2)


def test_top_k_breaks_ties_by_lower_column():
    scores = np.array([[1.0, 3.0, 3.0, 2.0]])
    seen = np.array([[False, False, False, True]])
    assert top_k(scores, seen, 3).tolist() == [[1, 2, 0]]


def test_wrong_shape_is_refused():
    catalogue, test, _ = _case()
    with pytest.raises(ValueError, match="expected"):
        evaluate_topn(lambda u, m: np.zeros((len(u), 2)), catalogue, test)
