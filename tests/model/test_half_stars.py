"""Half-star ratings (the MovieLens CSV releases) in the model's history bags and served rating.

Whole stars 1-5 keep the encoding they always had (level = rating - 1, ``mask_rating`` = the
rating); half stars 0.5-5.0 get 10 levels, and the model turns ``mask_rating`` back into the
rating it centres the weighted bags with.
"""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import MAX_MEMBER_BYTES
from recsys.data.adapters import HALF_STARS, STARS, read_dataset
from recsys.data.synthetic import synthetic_csv_members, write_archive


@pytest.fixture(scope="module")
def half_star_data(tmp_path_factory: pytest.TempPathFactory):
    path = write_archive(tmp_path_factory.mktemp("csv") / "csv.zip", synthetic_csv_members(), folder="ml-latest-small")
    return read_dataset(path, "ml-csv", max_member_bytes=MAX_MEMBER_BYTES)


def test_half_star_bags_have_one_key_per_level_and_mask_ratings_round_trip(half_star_data):
    from recsys.model import inputs
    from recsys.model.vocab import bag_targets, build_bags, build_vocabulary

    data = half_star_data
    vocab = build_vocabulary(data.ratings, inputs.user_table(data), inputs.movie_table(data), data.scale)
    assert vocab.scale == HALF_STARS and HALF_STARS.levels == 10 and STARS.levels == 5
    bags = build_bags(data.ratings, vocab, by_rating=True)
    assert bags.user_bag_keys == (len(vocab.movie_ids) + 1) * 10
    targets = bag_targets(data.ratings, bags, vocab.scale)
    level = np.rint(data.ratings["rating"].to_numpy() * 2).astype(np.int64) - 1  # 0.5 -> 0 .. 5.0 -> 9
    movie_index = {int(m): i + 1 for i, m in enumerate(vocab.movie_ids)}
    m = data.ratings["movie_id"].map(movie_index).to_numpy()
    np.testing.assert_array_equal(bags.user_bag[targets["bag_pos_user"]][:, 1], m * 10 + level)
    np.testing.assert_array_equal(targets["mask_rating"], level + 1)
    # what the model computes from mask_rating: the rating itself
    np.testing.assert_allclose(HALF_STARS.low + (targets["mask_rating"] - 1) * HALF_STARS.step, data.ratings["rating"])


def test_a_half_star_model_clips_to_its_scale(half_star_data):
    """Built, not trained (tests/data/test_real_csv.py trains one on real half-star data)."""
    from recsys.model import inputs
    from recsys.model.config import load_config
    from recsys.model.ranking import RankingModel
    from recsys.model.vocab import build_bags, build_vocabulary

    data = half_star_data
    vocab = build_vocabulary(data.ratings, inputs.user_table(data), inputs.movie_table(data), data.scale)
    assert list(vocab.inputs("user")) == ["user_id"]  # no demographics, no user side inputs
    cfg = load_config("tiny")
    model = RankingModel(cfg, vocab, build_bags(data.ratings, vocab, cfg.bag_ratings))
    assert model.levels == 10
    assert model.finish(np.array([-3.0, 0.2, 2.75, 9.0], np.float32)).numpy().tolist() == [0.5, 0.5, 2.75, 5.0]
