"""Metrics, baselines, reports, and the ``recsys train`` / ``recsys evaluate`` commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError
from recsys.model.baselines import BASELINES, all_baselines, parse_baselines
from recsys.model.evaluate import PROTOCOL, MethodResult, fold_means, ranking_metrics, rating_metrics
from recsys.model.report import write_report


def test_rating_metrics():
    m = rating_metrics(np.array([1, 2, 3]), np.array([2, 2, 5]))
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(math.sqrt(5 / 3))


def test_ranking_metrics_by_hand():
    test = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3],
            "movie_id": [10, 11, 12, 10, 11, 10],
            "rating": [5, 1, 4, 2, 4, 2],  # user 3 has no relevant movie: left out
        }
    )
    scores = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.5])
    m = ranking_metrics(test, scores, k=2)
    # user 1: ranking 10 (rel), 11, 12 (rel); top-2 has 1 of 2 relevant.
    ndcg1 = 1.0 / (1.0 + 1.0 / math.log2(3))
    # user 2: ranking 10, 11 (rel): dcg = 1/log2(3), ideal 1.
    ndcg2 = 1.0 / math.log2(3)
    assert m["users"] == 2
    assert m["ndcg"] == pytest.approx((ndcg1 + ndcg2) / 2)
    assert m["precision"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m["recall"] == pytest.approx((1 / 2 + 1) / 2)
    assert "rating >= 4" in PROTOCOL


def test_baseline_names_and_parsing():
    assert set(all_baselines()) >= {"global_mean", "random", "popularity", "top_rated", "baseline_only",
                                    "knn_item", "knn_user", "svd", "svdpp", "seed_faithful", "ids_only",
                                    "item_knn", "ease", "als", "bpr", "lightfm", "content"}  # fmt: skip
    assert parse_baselines("all") == list(all_baselines())
    assert parse_baselines("none") == []
    assert parse_baselines("svd, svdpp") == ["svd", "svdpp"]
    with pytest.raises(ConfigError, match="unknown baseline"):
        parse_baselines("svd,nope")


def test_simple_baselines_fit_and_predict():
    train = pd.DataFrame({"user_id": [1, 1, 2, 2], "movie_id": [10, 11, 10, 12], "rating": [5, 3, 4, 1]})
    pairs = pd.DataFrame({"user_id": [1, 3], "movie_id": [12, 99]})
    assert BASELINES["global_mean"].fit(train, 0)(pairs).tolist() == [3.25, 3.25]
    top = BASELINES["top_rated"].fit(train, 0)(pairs)
    assert top[1] == 3.25 and top[0] < 3.25  # unknown movie -> global mean; poorly rated movie below it
    svd = BASELINES["svd"].fit(train, 0)(pairs)
    assert np.all((svd >= 1) & (svd <= 5))


def test_report_files(tmp_path):
    topn = {"recall@10": 0.2, "ndcg@10": 0.21, "hr@10": 0.6, "recall@50": 0.4, "ndcg@50": 0.3,
            "coverage@10": 0.1, "novelty@10": 0.2, "topn_users": 456}  # fmt: skip
    rows = [
        MethodResult("svd", "SVD", 0.95, 0.75, 0.84, 0.74, 0.55, 1.0, topn=topn),
        MethodResult("popularity", "Popularity", None, None, 0.74, 0.66, 0.51, 0.0, topn=topn | {"recall@10": 0.3}),
    ]
    means = fold_means({"u1": rows, "u2": rows})
    assert means[0].rmse == pytest.approx(0.95) and means[1].rmse is None
    assert means[1].topn["recall@10"] == pytest.approx(0.3)
    paths = write_report(tmp_path, "cmp", "Comparison", means, {"split": "u1"})
    text = paths["markdown"].read_text()
    # the best list in bold, the best rating in bold, a method without a rating says so
    assert "| SVD | 0.2000 |" in text and "| Popularity | **0.3000** |" in text and "**0.9500**" in text
    assert "n/a" in text and "Protocol (top-N, 456 users): Full-catalogue" in text and "test-item NDCG@10" in text
    assert json.loads(paths["json"].read_text())["results"][0]["method"] == "svd"
    assert paths["plot"].stat().st_size > 1000


def test_train_and_evaluate_commands(db_url, tmp_path, monkeypatch, capsys):
    """`recsys train` then `recsys evaluate --split u1`: model, registry row, comparison table."""
    from recsys.cli import main
    from recsys.config import get_settings
    from recsys.db.engine import make_engine
    from recsys.model.registry import get_champion, list_versions

    monkeypatch.setenv("RECSYS_DATABASE_URL", db_url)
    monkeypatch.setenv("RECSYS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    engine = make_engine(db_url)
    # The tiny preset, cut to one quick pass over the 80k u1.base ratings.
    config = tmp_path / "quick.yaml"
    config.write_text("preset: tiny\nensemble_size: 1\nepochs: 1\nbatch_size: 4096\nbag_dropout: 0.0\n"
                      "retrieval_members: 1\nretrieval_epochs: 1\n")  # fmt: skip
    try:
        assert main(["train", "--split", "u1", "--config", str(config), "--quiet", "--no-refit"]) == 0
        out = capsys.readouterr().out
        champion = get_champion(engine)
        assert champion is not None and champion.version_id in out and champion.split == "u1"
        assert "holdout: Recall@10" in out and "served: the holdout model itself" in out
        assert (tmp_path / "artifacts" / champion.version_id / "saved_model.pb").is_file()

        # Bad input: non-zero exit, registry unchanged.
        before = list_versions(engine)
        assert main(["train", "--config", "tiny", "--split", "nonsense"]) == 2
        assert main(["train", "--config", "no-such-preset"]) == 2
        assert main(["train", "--config", "tiny", "--tolerance", "-1"]) == 2
        assert main(["train", "--config", "tiny", "--recall-tolerance", "-0.1"]) == 2
        assert "error:" in capsys.readouterr().err
        assert list_versions(engine) == before

        reports = tmp_path / "reports"
        assert main(["evaluate", "--split", "u1", "--config", str(config), "--baselines", "global_mean,top_rated",
                     "--out", str(reports)]) == 0  # fmt: skip
        out = capsys.readouterr().out
        assert "| TFRS quick |" in out and "| Global mean |" in out and "Protocol (top-N" in out
        assert "| TFRS quick, list ordered by predicted rating |" in out
        data = json.loads((reports / "evaluate-u1.json").read_text())
        methods = [r["method"] for r in data["results"]]
        assert methods == ["global_mean", "top_rated", "tfrs_quick", "tfrs_quick_by_rating"]
        by = {r["method"]: r for r in data["results"]}
        assert by["global_mean"]["topn"] == {} and 0 < by["top_rated"]["topn"]["recall@10"] < 1
        assert by["tfrs_quick"]["topn"]["topn_users"] == by["top_rated"]["topn"]["topn_users"] > 400
        assert data["ranking_users"] == by["top_rated"]["topn"]["topn_users"]
        assert (data["train_ratings"], data["test_ratings"]) == (80_000, 20_000)
        assert data["data_fingerprint"] == champion.data_fingerprint  # the data the model was trained on
        assert len(by["tfrs_quick"]["notes"]["member_epochs"]) == 1  # ensemble_size 1
        assert (reports / "evaluate-u1.png").is_file() and (reports / "evaluate-u1.md").is_file()
    finally:
        engine.dispose()
        get_settings.cache_clear()
