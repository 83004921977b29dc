"""The model registry and its promotion gate, on a real migrated PostgreSQL database."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from recsys.config import OFFICIAL_UDATA_SHA256
from recsys.data.splits import Split
from recsys.db.engine import make_engine
from recsys.errors import ConfigError, DataError
from recsys.model.config import preset
from recsys.model.registry import (
    artifact_uri,
    champion_summary,
    champion_version_id,
    get_champion,
    get_version,
    is_known_version,
    list_versions,
    newest_versions_summary,
    register_and_gate,
    register_baseline,
)


@pytest.fixture
def engine(empty_db_url: str):
    engine = make_engine(empty_db_url)
    yield engine
    engine.dispose()


def _register(engine, version_id: str, rmse: float, split: str = "u1", recall: float = 0.4, fp: str = "fp", **kw):
    return register_and_gate(
        engine,
        version_id=version_id,
        data_fingerprint=fp,
        split=split,
        config={"name": "test"},
        metrics={"rmse": rmse, "recall@10": recall},
        artifact_uri=f"/artifacts/{version_id}",
        **kw,
    )


def _statuses(engine) -> dict[str, str]:
    return {v.version_id: v.status for v in list_versions(engine)}


def test_promotion_gate(engine):
    first = _register(engine, "v1", 0.95)
    assert first.status == "champion" and "no current champion" in first.reason

    better = _register(engine, "v2", 0.93)
    assert better.status == "champion" and better.previous_champion == "v1"
    assert _statuses(engine) == {"v1": "retired", "v2": "champion"}
    assert "superseded by v2" in get_version(engine, "v1").decision_reason
    assert get_champion(engine).promoted_at is not None

    worse = _register(engine, "v3", 0.94)
    assert worse.status == "rejected"
    assert "worse on the rating" in worse.reason and "RMSE 0.9400 > 0.9300" in worse.reason
    assert get_champion(engine).version_id == "v2", "the champion is untouched by a rejection"
    assert get_version(engine, "v3").decision_reason == worse.reason

    within_tolerance = _register(engine, "v4", 0.935, tolerance=0.01, fp="newer data")  # fresher, slightly worse
    assert within_tolerance.status == "champion"

    held_back = _register(engine, "v5", 0.5, promote=False)
    assert held_back.status == "challenger" and get_champion(engine).version_id == "v4"

    other_split = _register(engine, "v6", 0.5, split="u2")
    assert other_split.status == "rejected" and "not comparable" in other_split.reason
    assert _statuses(engine) == {
        "v1": "retired", "v2": "retired", "v3": "rejected", "v4": "champion", "v5": "challenger", "v6": "rejected",
    }  # fmt: skip
    row = get_version(engine, "v4")
    assert row.metrics == {"rmse": 0.935, "recall@10": 0.4} and row.config == {"name": "test"} and row.split == "u1"


def test_gate_judges_the_list_and_the_rating(engine):
    """Promoted only if no worse on both Recall@10 and RMSE; the reason names both."""
    assert _register(engine, "v1", 0.90, recall=0.40).status == "champion"
    worse_list = _register(engine, "v2", 0.85, recall=0.39)  # better rating, worse list
    assert worse_list.status == "rejected"
    assert "worse on the list" in worse_list.reason and "Recall@10 0.3900 < champion v1's 0.4000" in worse_list.reason
    assert "RMSE 0.8500 <= 0.9000" in worse_list.reason
    worse_rating = _register(engine, "v3", 0.91, recall=0.50)  # better list, worse rating
    assert worse_rating.status == "rejected" and "worse on the rating" in worse_rating.reason
    both = _register(engine, "v4", 0.95, recall=0.30)
    assert "worse on the list and the rating" in both.reason
    assert _register(engine, "v5", 0.89, recall=0.395, recall_tolerance=0.01).status == "champion"
    assert get_champion(engine).version_id == "v5"
    with pytest.raises(ConfigError, match="recall@10"):
        register_and_gate(engine, version_id="v6", data_fingerprint="fp", split="u1", config={},
                          metrics={"rmse": 0.8}, artifact_uri="/a")  # fmt: skip


def test_gate_does_not_churn_on_a_tie(engine):
    """A retrain of the same data that only ties keeps the champion; on new data a tie is promoted."""
    assert _register(engine, "v1", 0.90, recall=0.40).status == "champion"
    tie = _register(engine, "v2", 0.90, recall=0.40)
    assert tie.status == "rejected" and "no better than champion v1 on the same data" in tie.reason
    within_tolerance = _register(engine, "v3", 0.905, recall=0.40, tolerance=0.01)
    assert within_tolerance.status == "rejected" and get_champion(engine).version_id == "v1"
    assert _register(engine, "v4", 0.90, recall=0.40, fp="new data").status == "champion"
    assert _register(engine, "v5", 0.90, recall=0.41, fp="new data").status == "champion"  # better list


def test_gate_rejects_bad_arguments_without_writing(engine):
    with pytest.raises(ConfigError, match="tolerance"):
        _register(engine, "v1", 0.9, tolerance=-1)
    with pytest.raises(ConfigError, match="rmse"):
        _register(engine, "v1", float("nan"))
    assert list_versions(engine) == []


def test_a_failed_registration_changes_nothing(engine):
    _register(engine, "v1", 0.95)
    with pytest.raises(sa.exc.IntegrityError):
        _register(engine, "v1", 0.90)  # duplicate version id: the whole transaction rolls back
    assert _statuses(engine) == {"v1": "champion"}


def test_a_baseline_goes_in_through_the_registry_lock_and_a_trained_model_replaces_it(engine):
    _register(engine, "v1", 0.95)
    kept = register_baseline(engine, version_id="base", data_fingerprint="fp", config={}, champion=False)
    assert kept.status == "challenger" and champion_version_id(engine) == "v1"
    register_baseline(engine, version_id="base2", data_fingerprint="fp", config={}, champion=True)
    assert _statuses(engine) == {"v1": "retired", "base": "challenger", "base2": "champion"}
    again = register_baseline(engine, version_id="base2", data_fingerprint="fp", config={}, champion=True)
    assert again.status == "champion" and champion_version_id(engine) == "base2", "registered already: unchanged"
    assert artifact_uri(engine, "base2") == "" and artifact_uri(engine, "nope") is None
    assert is_known_version(engine, "base") and not is_known_version(engine, "nope")
    assert champion_summary(engine)["version_id"] == "base2"
    assert [v["version_id"] for v in newest_versions_summary(engine)][0] == "base2"
    assert _register(engine, "v2", 0.99).status == "champion", "a champion without metrics loses the gate"


def _sample(ml, users: int) -> Split:
    ratings = ml.ratings[ml.ratings["user_id"] <= users]
    is_test = np.random.default_rng(1).random(len(ratings)) < 0.2
    return Split("sample", ratings[~is_test].reset_index(drop=True), ratings[is_test].reset_index(drop=True))


def test_train_and_register_then_bad_input_leaves_registry_unchanged(engine, ml, tmp_path):
    from recsys.model.export import load_model
    from recsys.model.pipeline import train_and_register

    split = _sample(ml, 60)
    result = train_and_register(ml, split, preset("smoke"), engine, tmp_path, verbose=0)
    assert result.decision.status == "champion"
    row = get_champion(engine)
    assert row.version_id == result.version_id and row.data_fingerprint == OFFICIAL_UDATA_SHA256
    assert row.config["name"] == "smoke" and 0.5 < row.metrics["rmse"] < 1.5
    assert 0 < row.metrics["recall@10"] <= 1 and row.metrics["topn_users"] > 0 and "test_item_ndcg@10" in row.metrics
    # The served artifact is the refit on every rating, with the epochs the holdout chose.
    served = load_model(row.artifact_uri).metadata
    assert served["version_id"] == row.version_id and served["refit"] is True and served["split"] == "all"
    assert row.metrics["refit"]["ratings"] == len(ml.ratings) == 100_000
    assert row.metrics["refit"]["member_epochs"] == row.metrics["member_epochs"] == served["member_epochs"]
    assert row.metrics["refit"]["retrieval_epochs"] == row.metrics["retrieval_epochs"]
    assert result.served.split == "all" and result.trained.split == "sample"
    assert served["known_users"] == ml.ratings["user_id"].nunique() > split.train["user_id"].nunique()
    before = list_versions(engine)
    artifacts_before = sorted(tmp_path.iterdir())

    tiny = Split("tiny", split.train[:10], split.test[:5])
    with pytest.raises(DataError, match="training ratings"):
        train_and_register(ml, tiny, preset("tiny"), engine, tmp_path, verbose=0)
    unknown = split.train.copy()
    unknown.loc[unknown.index[0], "user_id"] = 123_456
    with pytest.raises(DataError, match="not in the feature store"):
        train_and_register(ml, Split("x", unknown, split.test), preset("tiny"), engine, tmp_path, verbose=0)
    with pytest.raises(DataError, match="no test ratings"):
        train_and_register(ml, Split("x", split.train, split.test[:0]), preset("tiny"), engine, tmp_path, verbose=0)
    with pytest.raises(ConfigError):
        train_and_register(ml, split, preset("tiny", batch_size=-1), engine, tmp_path, verbose=0)
    assert list_versions(engine) == before
    assert sorted(tmp_path.iterdir()) == artifacts_before
