"""movielens_precompute: score every user x movie with the champion, publish atomically.

Nightly, and whenever ``movielens_train`` promotes a new champion. Shards are mapped
tasks (dynamic task mapping), so with the CeleryExecutor they spread over every worker.
A thin wrapper around ``recsys.scoring.runs``, ``partitions``, ``checks``, ``retention`` and ``precompute``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, dag, get_current_context, task

from movielens_common import (
    CHAMPION_MODEL,
    PUBLISHED_RANKING,
    START_DATE,
    bounds,
    default_args,
    recsys_engine,
    settings,
)
from recsys.config import MAX_SHARDS

log = logging.getLogger(__name__)

# RECSYS_PRECOMPUTE_SHARDS, whose default is recsys.scoring.commands.DEFAULT_SHARDS (the CLI's).
DEFAULT_SHARDS = settings().precompute_shards

DOC_MD = """
### Precompute the ranking: plan → score shards (mapped) → publish → validate → clean up

Every user × movie pair is scored with the **champion** model and published as one
ranking in `recsys.ranked_scores` (read through `recsys.current_ranked_scores` and
`recsys.top_recommendations`).

| task | what it does |
|---|---|
| `start_run` | records a run in `recsys.precompute_runs` and creates its (unattached, invisible) table |
| `plan_shards` | the shard numbers, `0..shards-1` (users are split by `user_id % shards`) |
| `score_shard` ×N | **dynamic task mapping**, one task per shard: loads the SavedModel, scores the shard's users × all movies (a ranking score and a predicted rating per pair), checks a sample against the full model, writes the shard's table and checks it before attaching it to the run (finite ranking scores, predicted ratings within 1–5, ranks 1..n per user, a sample read back). Idempotent: a retry replaces the shard whole |
| `publish` | checks that every shard was written and that the shards add up to users × movies, then publishes in **two transactions**: attaches the run to `recsys.ranked_scores`, waits for queries that started before, and moves the `recsys.published_ranking` pointer (`recsys.scoring.partitions.publish_run` says why); emits **`movielens_published_ranking`** |
| `validate` | re-checks the ranking readers now see through `recsys.current_ranked_scores` (`recsys.scoring.checks.check_published`): this run is the published one, every pair, finite ranking scores (`score`, any range), predicted ratings within 1–5 (or empty for a ranking published before migration 0007), contiguous ranks. A failure leaves the run published and fails the DAG run |
| `cleanup` | detaches superseded runs, drops failed runs and all but `keep` superseded rankings |
| `mark_failed` | runs only if a shard or the publish failed (`one_failed`): marks the run failed and drops its tables. **The previous ranking stays published.** |

Schedule: nightly 02:00 UTC, and on every new champion (`movielens_champion_model`).
Params: `shards`, `keep`, `model_version` (empty = the champion).
"""


@dag(
    dag_id="movielens_precompute",
    description="Score every user x movie with the champion and publish the ranking atomically",
    doc_md=DOC_MD,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 2 * * *", timezone="UTC"),  # nightly
        assets=CHAMPION_MODEL,
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # runs serialise; the library's publish lock is the second guard
    dagrun_timeout=timedelta(hours=3),
    default_args=default_args(timedelta(minutes=30), retries=2),
    tags=["recsys", "movielens", "scoring"],
    params={
        "shards": Param(
            DEFAULT_SHARDS,
            type="integer",
            **bounds(1, MAX_SHARDS),
            title="Shards",
            description="Mapped scoring tasks (users split by user_id % shards)",
        ),
        "keep": Param(2, type="integer", **bounds(0, 20), title="Keep", description="Old rankings to keep"),
        "model_version": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9A-Za-z_.:-]{1,64}$",
            title="Model version",
            description="A registered version id; empty = the current champion",
        ),
    },
)
def movielens_precompute() -> None:
    @task(execution_timeout=timedelta(minutes=5))
    def start_run() -> int:
        """Record the run (champion or the requested version) and create its hidden table."""
        from recsys.db.engine import check_connection
        from recsys.scoring.runs import start_run as start

        params = get_current_context()["params"]
        with recsys_engine() as engine:
            check_connection(engine)
            return start(engine, params.get("model_version") or None, int(params["shards"]))

    @task(execution_timeout=timedelta(minutes=1))
    def plan_shards(precompute_run: int) -> list[int]:
        """One mapped task per shard recorded on the run (the run row is the source of truth)."""
        from recsys.scoring.runs import run_info

        with recsys_engine() as engine:
            return list(range(run_info(engine, precompute_run).shards))

    @task(retries=3, map_index_template="shard {{ shard }}")
    def score_shard(precompute_run: int, shard: int) -> int:
        """Score one shard's users x all movies and write its table; safe to retry anywhere.

        Logs what the shard paid to start (on a Celery worker each shard is a new process).
        """
        started = time.perf_counter()
        from recsys.native_log import start_tensorflow

        start_tensorflow()  # its native start-up log would show as ERROR lines in the task log
        from recsys.scoring.precompute import load_scorer
        from recsys.scoring.precompute import score_shard as score

        imported = time.perf_counter()
        get_current_context()["shard"] = shard  # rendered in the UI as the map index name
        with recsys_engine() as engine:
            scorer = load_scorer(engine, precompute_run)  # reused if this process loaded it already
            loaded = time.perf_counter()
            rows = score(engine, precompute_run, shard, scorer)
        log.info(
            "shard %d: %d rows; start-up %.1f s importing TensorFlow and recsys, %.1f s loading the model and "
            "the feature store; %.1f s scoring, checking and writing",
            shard,
            rows,
            imported - started,
            loaded - imported,
            time.perf_counter() - loaded,
        )
        return rows

    @task(outlets=[PUBLISHED_RANKING], execution_timeout=timedelta(minutes=10))
    def publish(precompute_run: int, rows: list[int]) -> dict:
        """Check the run is complete (each shard was checked when written) and publish it: attach, then move the pointer.

        ``rows`` (the mapped shards' results) is taken only so that publishing waits for
        every shard; the library re-counts the rows itself.
        """
        from dataclasses import asdict

        from recsys.scoring.partitions import publish_run

        with recsys_engine() as engine:
            published = asdict(publish_run(engine, precompute_run))
        get_current_context()["outlet_events"][PUBLISHED_RANKING].extra = {
            "run_id": published["run_id"],
            "model_version": published["model_version"],
            "rows": published["rows"],
        }
        return published

    @task(execution_timeout=timedelta(minutes=10))
    def validate(published: dict) -> dict:
        """Check what readers now see: this run published, users x movies rows, finite scores, ranks 1..n."""
        from recsys.scoring.checks import check_published

        with recsys_engine() as engine:
            return check_published(engine, published["run_id"])

    @task(execution_timeout=timedelta(minutes=10))
    def cleanup(checked: dict) -> list[int]:
        """Drop failed runs' tables and all but ``keep`` superseded rankings (never the published one)."""
        from recsys.scoring.retention import cleanup as drop_old

        with recsys_engine() as engine:
            return drop_old(engine, keep=int(get_current_context()["params"]["keep"]))

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=3, execution_timeout=timedelta(minutes=5))
    def mark_failed() -> None:
        """A shard or the publish failed: record it and drop the run's tables; the pointer never moved."""
        from airflow.sdk.exceptions import AirflowSkipException

        from recsys.scoring.runs import fail_run

        context = get_current_context()
        run_id = context["ti"].xcom_pull(task_ids="start_run")
        if run_id is None:  # start_run itself failed: there is no run to mark
            raise AirflowSkipException("no precompute run was started")
        with recsys_engine() as engine:
            fail_run(engine, int(run_id), f"Airflow run {context['run_id']}: a shard or the publish task failed")

    run = start_run()
    rows = score_shard.partial(precompute_run=run).expand(shard=plan_shards(run))
    published = publish(run, rows)
    cleanup(validate(published))
    [rows, published] >> mark_failed()


movielens_precompute()
