"""The Airflow DAGs: structure (DagBag) and end-to-end runs with ``dag.test()`` on real PostgreSQL.

Why in-process ``dag.test()``: it runs the real task code through the Task SDK (XCom,
Params, trigger rules, retries, mapped tasks, asset events) against a real metadata
database, without a scheduler, in seconds. The metadata database is a throwaway
PostgreSQL database created for the session (never SQLite), migrated once; the recsys
database is a fresh one reached only through the ``recsys_db`` connection, as in production.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import airflow_env
from recsys.config import PROJECT_ROOT
from recsys.db.admin import create_database, drop_database
from recsys.db.engine import make_engine

DAGS = PROJECT_ROOT / "dags"
EXPECTED = {
    "movielens_ingest": {
        "tasks": {"load_movielens", "feature_store_updated"},
        "schedule": "0 1 * * 0",
        "tags": {"recsys", "movielens", "ingest"},
    },
    "movielens_train": {
        "tasks": {"train_and_register", "champion_promoted"},
        "schedule": "Asset or 0 3 * * 0",
        "tags": {"recsys", "movielens", "model"},
    },
    "movielens_precompute": {
        "tasks": {"start_run", "plan_shards", "score_shard", "publish", "validate", "cleanup", "mark_failed"},
        "schedule": "Asset or 0 2 * * *",
        "tags": {"recsys", "movielens", "scoring"},
    },
    "movielens_rerank": {"tasks": {"rerank"}, "schedule": "None", "tags": {"recsys", "movielens", "rerank"}},
}
PARSE_BUDGET_S = 0.5  # "well under a second" per file, with headroom for a busy 2-core CI machine


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def dagbag():
    """The project's DAG folder parsed the way the DAG processor does (bundle path on sys.path)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=DAGS, bundle_path=DAGS, bundle_name="dags-folder")


@pytest.fixture(scope="session")
def airflow_db(admin_url: str) -> Iterator[str]:
    """A migrated Airflow metadata database (PostgreSQL) for this session, dropped afterwards."""
    url = create_database(admin_url, "airflow_test")
    metadata = airflow_env.metadata_url(url, make_url(url).database)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=os.environ.copy(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"airflow db migrate: {time.perf_counter() - started:.1f} s")
    if "airflow.settings" in sys.modules:  # airflow was imported before: point its ORM at this database
        from airflow import settings

        settings.dispose_orm()
        settings.configure_vars()
        settings.configure_orm()
    yield metadata
    from airflow import settings

    settings.dispose_orm()
    drop_database(admin_url, url)


@pytest.fixture(scope="module")
def recsys_url(admin_url: str, airflow_db: str, tmp_path_factory) -> Iterator[str]:
    """A brand-new recsys database, handed to the DAGs only as AIRFLOW_CONN_RECSYS_DB."""
    from recsys.config import get_settings

    url = create_database(admin_url, "recsys_test_airflow")
    saved = {k: os.environ.get(k) for k in ("AIRFLOW_CONN_RECSYS_DB", "RECSYS_HOME", "RECSYS_DATABASE_URL")}
    os.environ["AIRFLOW_CONN_RECSYS_DB"] = airflow_env.connection_uri(url)
    os.environ["RECSYS_HOME"] = str(tmp_path_factory.mktemp("recsys-home"))  # artifacts, downloads
    os.environ.pop("RECSYS_DATABASE_URL", None)  # the DAGs must not need it
    get_settings.cache_clear()
    yield url
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    get_settings.cache_clear()
    drop_database(admin_url, url)


@pytest.fixture(scope="module")
def engine(recsys_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(recsys_url)
    yield eng
    eng.dispose()


def run_dag(dagbag, dag_id: str, conf: dict | None = None):
    """``dag.test()`` one run; returns (dag run, seconds)."""
    started = time.perf_counter()
    dr = dagbag.dags[dag_id].test(run_conf=conf)
    seconds = time.perf_counter() - started
    print(f"{dag_id}: {dr.state} in {seconds:.1f} s")
    return dr, seconds


def task_states(dr) -> dict[str, str]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in dr.get_task_instances()
    }


def xcom(dr, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dr.run_id, key="return_value", dag_ids=dr.dag_id, task_ids=task_id, map_indexes=map_index
            ).with_only_columns(XComModel.value)
        ).first()
    return XComModel.deserialize_value(type("R", (), {"value": row})) if row is not None else None


def scalar(engine: sa.Engine, sql: str, **params) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def published(engine: sa.Engine) -> tuple:
    """The published run and an exact fingerprint of its ranking (rows, integer sums of scores and ranks)."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "SELECT (SELECT run_id FROM recsys.published_ranking), count(*), "
                    "sum(round(score * 10000)::bigint), sum(rank) FROM recsys.current_ranked_scores"
                )
            ).one()
        )


# ---------------------------------------------------------------- structure


def test_dag_files_import_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == set(EXPECTED)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_structure(dagbag, dag_id: str) -> None:
    from airflow.serialization.encoders import coerce_to_core_timetable

    dag = dagbag.dags[dag_id]
    expected = EXPECTED[dag_id]
    assert {t.task_id for t in dag.tasks} == expected["tasks"]
    assert coerce_to_core_timetable(dag.timetable).summary == expected["schedule"]
    assert set(dag.tags) == expected["tags"]
    assert dag.catchup is False
    assert dag.doc_md and len(dag.doc_md) > 200, "the UI shows doc_md: explain the DAG"
    assert dag.dagrun_timeout is not None
    assert dag.max_active_runs >= 1
    for t in dag.tasks:
        assert t.owner == "recsys"
        assert t.retries >= 1, f"{t.task_id}: no retries"
        assert t.retry_exponential_backoff >= 2, f"{t.task_id}: no exponential backoff"
        assert t.max_retry_delay is not None
        assert t.execution_timeout is not None, f"{t.task_id}: no execution timeout"


def test_precompute_maps_score_shard_and_cleans_up_on_failure(dagbag) -> None:
    dag = dagbag.dags["movielens_precompute"]
    assert dag.task_dict["score_shard"].is_mapped
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(dag.task_dict["score_shard"], MappedOperator)
    mark = dag.task_dict["mark_failed"]
    assert str(mark.trigger_rule) in ("one_failed", "TriggerRule.ONE_FAILED")
    assert {"score_shard", "publish"} <= mark.upstream_task_ids


def test_assets_connect_the_pipeline(dagbag) -> None:
    """ingest -> (feature store) -> train -> (champion model) -> precompute, by asset events."""
    outlets = {
        (dag_id, t.task_id): [a.name for a in t.outlets] for dag_id, dag in dagbag.dags.items() for t in dag.tasks
    }
    assert outlets[("movielens_ingest", "feature_store_updated")] == ["movielens_feature_store"]
    assert outlets[("movielens_train", "champion_promoted")] == ["movielens_champion_model"]
    assert outlets[("movielens_precompute", "publish")] == ["movielens_published_ranking"]
    train_on = dagbag.dags["movielens_train"].timetable.asset_condition
    precompute_on = dagbag.dags["movielens_precompute"].timetable.asset_condition
    assert train_on.name == "movielens_feature_store"
    assert precompute_on.name == "movielens_champion_model"


# What `from recsys.config import ...` loads; any other recsys module at parse time is a regression.
SETTINGS_MODULES = {
    "recsys",
    "recsys.config",
    "recsys.data",
    "recsys.data.adapters",  # the data sets' names and official addresses: standard library only
    "recsys.errors",
    "recsys.scoring",
    "recsys.scoring.commands",
    "recsys.scoring.rerank_limits",
}


def test_dag_files_parse_fast() -> None:
    """Each file parses in well under a second: no TensorFlow (or other recsys) import at top level.

    The one part of ``recsys`` a DAG file imports at parse time is its settings
    (``recsys.config``: pydantic-settings, the error classes, the shard default and the dataset
    adapters' table, ``recsys.data.adapters``).

    Measured in a fresh interpreter where the ``airflow.sdk`` names are already imported
    (the DAG processor pre-imports them before parsing), so modules imported by an earlier
    test cannot hide a slow import; the first file also pays for ``movielens_common``.
    Airflow's own one-off discovery of asset URI handlers (~150 ms, the same for any DAG
    with an asset) is warmed up first, as it is in a running DAG processor.
    """
    code = (
        "import sys, time, json, runpy\n"
        "from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, dag, task\n"
        "Asset(name='warm', uri='warm://up')\n"  # Airflow's one-off asset-handler discovery, not ours
        "sys.path.insert(0, sys.argv[1]); out = {}; before = set(sys.modules)\n"
        "for f in sys.argv[2:]:\n"
        "    t = time.perf_counter(); runpy.run_path(f); out[f] = time.perf_counter() - t\n"
        "added = set(sys.modules) - before; new = {m.split('.')[0] for m in added}\n"
        "heavy = sorted(new & {'tensorflow', 'keras', 'tf_keras', 'pandas', 'numpy', 'psycopg', 'sqlalchemy'})\n"
        f"heavy += sorted(m for m in added if m.split('.')[0] == 'recsys' and m not in {SETTINGS_MODULES!r})\n"
        "print(json.dumps({'times': out, 'heavy': heavy}))"
    )
    files = sorted(str(p) for p in DAGS.glob("movielens_*.py") if p.name != "movielens_common.py")
    done = subprocess.run([sys.executable, "-c", code, str(DAGS), *files], capture_output=True, text=True, check=True)
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    print({Path(f).name: f"{s * 1000:.0f} ms" for f, s in report["times"].items()})
    assert report["heavy"] == [], f"DAG files imported heavy modules at parse time: {report['heavy']}"
    slow = {f: s for f, s in report["times"].items() if s > PARSE_BUDGET_S}
    assert not slow, f"slow to parse: {slow}"


def test_the_train_dag_offers_every_preset_the_library_has(dagbag) -> None:
    from recsys.model.config import PRESETS

    schema = dagbag.dags["movielens_train"].params.get_param("preset").schema
    assert schema["enum"] == list(PRESETS)


NUMBER_PARAMS = {  # every number box of the trigger forms, a value inside its range and one just outside
    ("movielens_precompute", "shards"): (4, 0),
    ("movielens_precompute", "keep"): (0, -1),
    ("movielens_train", "tolerance"): (1, 1.5),
    ("movielens_train", "recall_tolerance"): (0, -0.1),
    ("movielens_rerank", "user_id"): (1, 0),
    ("movielens_rerank", "k"): (1, 0),
}


def test_number_boxes_refuse_out_of_range_values_instead_of_clamping_them(dagbag) -> None:
    """Airflow's form clamps what is typed to a top-level minimum/maximum (0 became 1 in k):
    the ranges sit where the box cannot see them, and a run with a value outside is refused."""
    from airflow.sdk.definitions.param import ParamValidationError

    boxes = {
        (dag_id, name)
        for dag_id, dag in dagbag.dags.items()
        for name, param in dag.params.items()
        if {"integer", "number"} & set(_types(param.schema))
    }
    assert boxes == set(NUMBER_PARAMS), "a number Param was added or removed: list it above"
    for (dag_id, name), (inside, outside) in NUMBER_PARAMS.items():
        # A copy: resolve() keeps the value it accepted as the Param's default, and the DAG
        # objects are shared with later tests (a conf without user_id would then pass).
        param = copy.deepcopy(dagbag.dags[dag_id].params.get_param(name))
        assert not {"minimum", "maximum"} & set(param.schema), f"{dag_id}.{name}: the form's box would clamp"
        assert param.resolve(inside) == inside
        with pytest.raises(ParamValidationError):
            param.resolve(outside)


def _types(schema: dict) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def test_the_train_dag_holds_out_what_the_cli_holds_out() -> None:
    """One holdout default: the DAG's (recsys.config's, read at parse time) equals the CLI's."""
    from movielens_common import DEFAULT_HOLDOUT
    from recsys.data.splits import make_split
    from recsys.model.commands import DEFAULT_HOLDOUT as CLI_DEFAULT

    assert DEFAULT_HOLDOUT == CLI_DEFAULT == "temporal:0.1"
    import pandas as pd

    ratings = pd.DataFrame({"user_id": [1, 2] * 10, "movie_id": range(20), "rating": 4, "rated_at": range(20)})
    assert make_split(DEFAULT_HOLDOUT, ratings).test["rated_at"].min() == 18, "the newest 10% are held out"


def test_rerank_request_check_is_the_api_model_with_short_reasons() -> None:
    """The in-task check is the API's RerankRequest: same refusals, one short line, never the list."""
    from pydantic import ValidationError

    from movielens_rerank import InvalidRequest, check_request
    from recsys.api.schemas import RerankRequest, short_reason

    ok = check_request({"user_id": 1, "candidate_movies": ["Toy Story (1995)", 50], "k": 1})
    assert ok["titles"] == ["Toy Story (1995)"] and ok["movie_ids"] == [50] and ok["k"] == 1
    for bad, message in [
        ({"user_id": "1; DROP TABLE recsys.users", "candidate_movies": [1]}, "user_id: user_id must be an integer"),
        ({"user_id": True, "candidate_movies": [1]}, "user_id: user_id must be an integer"),
        ({"user_id": 17.0, "candidate_movies": [1]}, "user_id: user_id must be an integer"),
        ({"user_id": 0, "candidate_movies": [1]}, "user_id: Input should be greater than or equal to 1"),
        ({"user_id": 1, "candidate_movies": []}, "give candidate_movies and/or candidate_movie_ids"),
        ({"user_id": 1, "candidate_movies": "Toy Story"}, "candidate_movies: Input should be a valid list"),
        ({"user_id": 1, "candidate_movies": list(range(1, 10_002))}, "candidate_movies: List should have at most 1000"),
        ({"user_id": 1, "candidate_movies": ["x" * 100_000]}, "candidate_movies[0].title: String should have at most"),
        ({"user_id": 1, "candidate_movies": ["Toy\x00Story"]}, "candidate_movies[0].title: String should match"),
        ({"user_id": 1, "candidate_movies": [{"$ne": 1}] * 900}, "candidate_movies[0]: must be a title (string) or"),
        ({"user_id": 1, "candidate_movies": [1], "k": 0}, "k: Input should be greater than or equal to 1"),
    ]:
        with pytest.raises(InvalidRequest) as raised:
            check_request(bad)
        reason = str(raised.value)
        assert reason.startswith(message) and len(reason) < 300, reason
        with pytest.raises(ValidationError) as api_error:
            RerankRequest.model_validate(bad)
        assert short_reason(api_error.value) == reason  # the API's model, the API's words


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def pipeline(dagbag, recsys_url: str, engine: sa.Engine, archive: Path) -> dict[str, Any]:
    """ingest -> train (the smoke preset) -> precompute through Airflow, once for the module's tests."""
    runs: dict[str, Any] = {}
    runs["ingest"] = run_dag(dagbag, "movielens_ingest", {"source": str(archive)})
    runs["train"] = run_dag(dagbag, "movielens_train", {"preset": "smoke", "split": "u1"})
    runs["precompute"] = run_dag(dagbag, "movielens_precompute", {"shards": 2})
    return runs


@pytest.mark.slow
def test_ingest_dag_loads_the_feature_store(pipeline, engine: sa.Engine) -> None:
    dr, _ = pipeline["ingest"]
    assert str(dr.state) == "success", task_states(dr)
    assert scalar(engine, "SELECT count(*) FROM recsys.users") == 943
    assert scalar(engine, "SELECT count(*) FROM recsys.movies") == 1682
    assert scalar(engine, "SELECT count(*) FROM recsys.ratings") == 100_000
    assert scalar(engine, "SELECT count(*) FROM recsys.datasets") == 1
    assert xcom(dr, "feature_store_updated")["ratings"] == 100_000


@pytest.mark.slow
def test_ingest_dag_again_is_a_no_op_and_emits_no_asset_event(pipeline, dagbag, engine, archive) -> None:
    dr, _ = run_dag(dagbag, "movielens_ingest", {"source": str(archive)})
    states = task_states(dr)
    assert states["load_movielens"] == "success"
    assert states["feature_store_updated"] == "skipped"  # nothing new: train is not re-triggered
    assert scalar(engine, "SELECT count(*) FROM recsys.datasets") == 1


@pytest.mark.slow
def test_train_dag_registers_a_champion(pipeline, engine: sa.Engine) -> None:
    dr, _ = pipeline["train"]
    assert str(dr.state) == "success", task_states(dr)
    decision = xcom(dr, "train_and_register")
    assert decision["status"] == "champion" and decision["preset"] == "smoke"
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT version_id, status, split, config->>'name' FROM recsys.model_versions")
        ).one()
    assert tuple(row) == (decision["version_id"], "champion", "u1", "smoke")
    assert Path(decision["artifact"], "saved_model.pb").is_file()
    assert xcom(dr, "champion_promoted")["version_id"] == decision["version_id"]


@pytest.mark.slow
def test_precompute_dag_publishes_a_complete_ranking(pipeline, engine: sa.Engine) -> None:
    dr, _ = pipeline["precompute"]
    states = task_states(dr)
    assert str(dr.state) == "success", states
    assert states["score_shard[0]"] == states["score_shard[1]"] == "success"
    assert states["mark_failed"] == "skipped"
    run_id, rows, _, _ = published(engine)
    assert rows == 943 * 1682
    with engine.connect() as conn:
        run = conn.execute(
            sa.text("SELECT status, shards, shards_done, model_version FROM recsys.precompute_runs WHERE run_id = :r"),
            {"r": run_id},
        ).one()
        champion = conn.execute(sa.text("SELECT version_id FROM recsys.model_versions WHERE status = 'champion'"))
        assert run.status == "published" and run.shards == 2 and list(run.shards_done) == [0, 1]
        assert run.model_version == champion.scalar()
        # ranks 1..n among unseen movies for every user; seen movies have none
        bad = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT user_id FROM recsys.current_ranked_scores WHERE NOT seen "
                "GROUP BY user_id HAVING min(rank) <> 1 OR max(rank) <> count(*)) g"
            )
        ).scalar()
        assert bad == 0
        seen = conn.execute(sa.text("SELECT count(*) FROM recsys.current_ranked_scores WHERE seen")).scalar()
        assert seen == 100_000
        # both numbers of every pair: a predicted rating within 1-5 beside the ranking score
        rated, low, high = conn.execute(
            sa.text("SELECT count(predicted_rating), min(predicted_rating), max(predicted_rating) "
                    "FROM recsys.current_ranked_scores")
        ).one()  # fmt: skip
        assert rated == 943 * 1682 and 1 <= low <= high <= 5
    assert xcom(dr, "validate") == {"run_id": run_id, "rows": 943 * 1682}


@pytest.mark.slow
def test_failing_shard_retries_and_leaves_the_previous_ranking_published(
    pipeline, dagbag, engine: sa.Engine, monkeypatch
) -> None:
    """Shard 0 fails once (retried, then succeeds); shard 1 always fails: nothing is published."""
    import recsys.scoring.precompute as precompute

    before = published(engine)
    real = precompute.score_shard
    calls: dict[int, int] = {0: 0, 1: 0}

    def flaky(engine_, run_id, shard, scorer=None):
        calls[shard] += 1
        if shard == 1 or calls[shard] == 1:
            raise RuntimeError(f"injected failure in shard {shard}, attempt {calls[shard]}")
        return real(engine_, run_id, shard, scorer)

    monkeypatch.setattr(precompute, "score_shard", flaky)
    dr, _ = run_dag(dagbag, "movielens_precompute", {"shards": 2})
    states = task_states(dr)
    print(f"tried: shard 0 x{calls[0]}, shard 1 x{calls[1]}; held: published ranking {before[:2]}")
    assert str(dr.state) == "failed"
    assert states["score_shard[0]"] == "success" and calls[0] == 2  # a failed shard is retried
    assert states["score_shard[1]"] == "failed" and calls[1] == 4  # 1 try + 3 retries
    assert states["publish"] == "upstream_failed"
    assert states["mark_failed"] == "success"
    assert published(engine) == before  # the previous ranking: same run, same rows, same scores
    with engine.connect() as conn:
        failed = conn.execute(
            sa.text("SELECT run_id, status, error FROM recsys.precompute_runs ORDER BY run_id DESC LIMIT 1")
        ).one()
        leftover = conn.execute(
            sa.text("SELECT to_regclass('recsys.ranked_scores_r' || :r)"), {"r": failed.run_id}
        ).scalar()
    assert failed.status == "failed" and "shard" in failed.error
    assert leftover is None  # the failed run's tables are gone


@pytest.mark.slow
def test_rerank_dag_writes_and_returns_the_sorted_candidates(pipeline, dagbag, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        dup = conn.execute(
            sa.text("SELECT title FROM recsys.movies GROUP BY title HAVING count(*) > 1 ORDER BY title LIMIT 1")
        ).scalar()
    conf = {
        "user_id": 42,
        "candidate_movies": ["Star Wars (1977)", "fargo (1996)", dup, "No Such Movie (2099)", 1, 99999],
        "k": None,
    }
    dr, _ = run_dag(dagbag, "movielens_rerank", conf)
    assert str(dr.state) == "success", task_states(dr)
    result = xcom(dr, "rerank")
    run_id = published(engine)[0]
    assert result["precompute_run_id"] == run_id
    ranked_ids = {r["movie_id"] for r in result["ranked"]}
    assert {50, 1} <= ranked_ids  # Star Wars (1977) is id 50; fargo matched case-insensitively
    assert result["unknown_titles"] == ["No Such Movie (2099)"]
    assert result["ambiguous_titles"][0]["title"] == dup and len(result["ambiguous_titles"][0]["movie_ids"]) > 1
    assert result["unknown_movie_ids"] == [99999]
    with engine.connect() as conn:
        req = conn.execute(
            sa.text("SELECT * FROM recsys.rerank_requests WHERE request_id = :r"), {"r": result["request_id"]}
        ).one()
        rows = conn.execute(
            sa.text(
                "SELECT r.position, r.movie_id, r.score, r.predicted_rating, r.rank, s.rank AS published_rank, "
                "s.score AS published_score, s.predicted_rating AS published_rating "
                "FROM recsys.rerank_results r JOIN recsys.current_ranked_scores s "
                "ON s.user_id = 42 AND s.movie_id = r.movie_id WHERE r.request_id = :r ORDER BY r.position"
            ),
            {"r": result["request_id"]},
        ).all()
    assert req.user_id == 42 and req.precompute_run_id == run_id and req.airflow_run_id == dr.run_id
    assert req.unknown_titles == ["No Such Movie (2099)"] and req.unknown_movie_ids == [99999]
    assert [r.movie_id for r in rows] == [r["movie_id"] for r in result["ranked"]]
    assert all(r.rank == r.published_rank for r in rows)  # the stored ranks are the published ones
    assert all(r.score == r.published_score and r.predicted_rating == r.published_rating for r in rows)
    assert all(1 <= r.predicted_rating <= 5 for r in rows)
    assert [r["predicted_rating"] for r in result["ranked"]] == [round(r.predicted_rating, 6) for r in rows]
    # the published order: unseen movies by rank, then the ones user 42 rated, by score
    with engine.connect() as conn:
        published_order = (
            conn.execute(
                sa.text(
                    "SELECT movie_id FROM recsys.current_ranked_scores WHERE user_id = 42 AND movie_id = ANY(:m) "
                    "ORDER BY rank NULLS LAST, score DESC, movie_id"
                ),
                {"m": [r.movie_id for r in rows]},
            )
            .scalars()
            .all()
        )
    assert [r.movie_id for r in rows] == published_order


@pytest.mark.slow
def test_rerank_dag_top_k(pipeline, dagbag, engine: sa.Engine) -> None:
    dr, _ = run_dag(dagbag, "movielens_rerank", {"user_id": 7, "candidate_movies": [1, 2, 3, 4, 5], "k": 2})
    result = xcom(dr, "rerank")
    assert [r["position"] for r in result["ranked"]] == [1, 2]
    assert (
        scalar(engine, "SELECT count(*) FROM recsys.rerank_results WHERE request_id = :r", r=result["request_id"]) == 2
    )


def test_rerank_dag_takes_what_its_trigger_form_sends(pipeline, dagbag) -> None:
    """The form's box sends one string per line: ids as digits, or a pasted JSON list.

    ``k`` is given: dag.test() in one process keeps an earlier run's param values as defaults."""
    dr, _ = run_dag(
        dagbag, "movielens_rerank", {"user_id": 7, "candidate_movies": ["50", " 1 ", "Heat (1995)"], "k": None}
    )
    assert str(dr.state) == "success", task_states(dr)
    assert sorted(r["movie_id"] for r in xcom(dr, "rerank")["ranked"]) == [1, 50, 273]
    dr, _ = run_dag(dagbag, "movielens_rerank", {"user_id": 7, "candidate_movies": ['["Fargo (1996)", 50]'], "k": None})
    assert sorted(r["movie_id"] for r in xcom(dr, "rerank")["ranked"]) == [50, 100]


HOSTILE = [
    pytest.param({"user_id": "42 OR 1=1", "candidate_movies": [1]}, "user_id", id="sql-in-user-id"),
    pytest.param({"user_id": -1, "candidate_movies": [1]}, "user_id", id="negative-user"),
    pytest.param({"user_id": 2**40, "candidate_movies": [1]}, "user_id", id="huge-user"),
    pytest.param({"candidate_movies": [1]}, "user_id", id="missing-user"),
    pytest.param({"user_id": 42, "candidate_movies": []}, "candidate_movies", id="empty-list"),
    pytest.param({"user_id": 42, "candidate_movies": "Star Wars"}, "candidate_movies", id="not-a-list"),
    pytest.param({"user_id": 42, "candidate_movies": list(range(1, 10_001))}, "candidate_movies", id="10k-items"),
    pytest.param({"user_id": 42, "candidate_movies": ["x" * 100_000]}, "candidate_movies", id="100k-char-title"),
    pytest.param({"user_id": 42, "candidate_movies": ["Star\x00Wars"]}, "candidate_movies", id="nul-byte"),
    pytest.param({"user_id": 42, "candidate_movies": ["a\u001b[31mred"]}, "candidate_movies", id="ansi-escape"),
    pytest.param({"user_id": 42, "candidate_movies": [{"a": {"b": {"c": [1]}}}]}, "candidate_movies", id="nested"),
    pytest.param({"user_id": 42, "candidate_movies": [1.5]}, "candidate_movies", id="float-id"),
    pytest.param({"user_id": 42, "candidate_movies": [1], "k": "all"}, "k", id="k-string"),
    pytest.param({"user_id": 42, "candidate_movies": [1], "k": 0}, "k", id="k-zero"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("conf", "param"), HOSTILE)
def test_rerank_dag_rejects_hostile_params_and_writes_nothing(pipeline, dagbag, engine, conf, param) -> None:
    """Invalid Params are refused before a run exists (as the UI form and REST API do), naming the param."""
    from airflow.models.dagrun import DagRun
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.utils.session import create_session

    def counts():
        with create_session() as session:
            runs = session.query(DagRun).filter(DagRun.dag_id == "movielens_rerank").count()
        return runs, scalar(engine, "SELECT count(*) FROM recsys.rerank_requests"), published(engine)

    before = counts()
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {param}") as raised:
        dagbag.dags["movielens_rerank"].test(run_conf=conf)
    print(f"{str(conf)[:60]} -> {str(raised.value)[:120]}")
    assert counts() == before  # no run, no row, the ranking unchanged


@pytest.mark.slow
def test_rerank_dag_refuses_in_the_task_what_its_param_schema_lets_through(pipeline, dagbag, engine) -> None:
    """user_id 17.0 is an integer to JSON Schema: the run exists, the task fails once, writes nothing."""
    before = scalar(engine, "SELECT count(*) FROM recsys.rerank_requests")
    dr, _ = run_dag(dagbag, "movielens_rerank", {"user_id": 17.0, "candidate_movies": [1, "Star Wars (1977)"]})
    assert str(dr.state) == "failed"
    assert dr.get_task_instance("rerank").try_number == 1  # AirflowFailException: no retry
    assert scalar(engine, "SELECT count(*) FROM recsys.rerank_requests") == before


@pytest.mark.slow
def test_rerank_dag_suggests_what_the_api_suggests(pipeline, dagbag, engine) -> None:
    from recsys.scoring import title_match

    conf = {"user_id": 42, "candidate_movies": ["Toy Stroy (1995)", "toy story", "Heat", 50], "k": 1}
    dr, _ = run_dag(dagbag, "movielens_rerank", conf)
    assert str(dr.state) == "success", task_states(dr)
    result = xcom(dr, "rerank")
    assert [r["movie_id"] for r in result["ranked"]] == [50]
    assert result["unknown_titles"] == ["Toy Stroy (1995)", "toy story", "Heat"]
    with engine.connect() as conn:
        index = title_match.TitleIndex(conn.execute(sa.text(title_match.TITLES_SQL)).all())
    expected = [
        {"title": s.title, "matches": [{"movie_id": m.movie_id, "title": m.title} for m in s.matches]}
        for s in index.suggestions(result["unknown_titles"])
    ]
    assert result["suggestions"] == expected
    assert [s["matches"][0]["movie_id"] for s in expected] == [1, 1, 273]


@pytest.mark.slow
def test_rerank_dag_unknown_user_fails_without_retry_or_write(pipeline, dagbag, engine) -> None:
    before = scalar(engine, "SELECT count(*) FROM recsys.rerank_requests")
    dr, _ = run_dag(dagbag, "movielens_rerank", {"user_id": 99_999, "candidate_movies": [1]})
    assert str(dr.state) == "failed"
    ti = dr.get_task_instance("rerank")
    assert ti.try_number == 1  # AirflowFailException: a retry cannot make the user exist
    assert scalar(engine, "SELECT count(*) FROM recsys.rerank_requests") == before
