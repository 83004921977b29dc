"""movielens_train: train a challenger, evaluate it, register it, apply the promotion gate.

Weekly, and also whenever ``movielens_ingest`` loads a new data set. A thin wrapper
around ``recsys.model.pipeline.train_and_register``; TensorFlow is imported inside the task.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from movielens_common import (
    CHAMPION_MODEL,
    DEFAULT_HOLDOUT,
    FEATURE_STORE,
    START_DATE,
    bounds,
    default_args,
    recsys_engine,
    user_errors_fail_fast,
)
from recsys.data.adapters import NATIVE_SPLITS

# recsys.model.config.PRESETS, spelt out: DAG files import no recsys module at parse time
# (tests/airflow/test_dags.py checks that the two lists agree).
PRESETS = ["full", "seed_faithful", "tiny", "smoke", "ids_only"]

# A data set's own folds (any adapter's: ML-100K's u1-u5, ua, ub), or a seeded random / temporal
# split; never a file path from the UI. A native split the loaded data set lacks fails in the task.
SPLIT_PATTERN = rf"^({'|'.join(NATIVE_SPLITS)}|random:0?\.[0-9]{{1,6}}:[0-9]{{1,9}}|temporal:0?\.[0-9]{{1,6}})$"

DOC_MD = """
### Train → evaluate → register → promotion gate

Trains a **challenger** on the training part of the holdout split `split` (by default
the newest 10% of ratings are held out), measures it on the holdout — the full-catalogue
top-10 list (Recall@10) and the rating error (RMSE) — and applies the promotion gate: it
becomes **champion** only if its Recall@10 is no worse than the champion's − `recall_tolerance`
*and* its RMSE no worse than the champion's + `tolerance` (on the same split), and — when it
was trained on the champion's own data — better on one of the two (a tie keeps the champion,
so a retrain of unchanged data never churns the ranking); otherwise it
is recorded as *rejected*, with the reason naming both, and the champion and the published
ranking stay as they are. A model that can win is **refit on every rating** (same
hyperparameters, the epochs the holdout chose) and that refit is exported under
`RECSYS_HOME/artifacts` and served; the registry row keeps the holdout metrics and the refit.

| task | what it does |
|---|---|
| `train_and_register` | `recsys.model.pipeline.train_and_register()`: holdout → gate → refit → export → register, all-or-nothing (no registry row without an artifact and vice versa) |
| `champion_promoted` | emits the **`movielens_champion_model`** asset event when the new model won, which triggers `movielens_precompute`; *skipped* otherwise |

Schedule: Sundays 03:00 UTC, and after every ingestion that loaded new data.
Params: `preset` (`full`, `seed_faithful`, `tiny`, `smoke`, `ids_only`), `split` (`temporal:FRACTION`,
`u1`..`u5`, `ua`, `ub`, `random:FRACTION:SEED`), `tolerance` (RMSE slack vs. the champion),
`recall_tolerance` (Recall@10 slack vs. the champion).
"""


@dag(
    dag_id="movielens_train",
    description="Train, evaluate and register a ranking model; promote it if it beats the champion",
    doc_md=DOC_MD,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC"),  # weekly, Sundays 03:00
        assets=FEATURE_STORE,
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=4),
    default_args=default_args(timedelta(hours=3), retries=1),
    tags=["recsys", "movielens", "model"],
    params={
        "preset": Param("full", type="string", enum=PRESETS, title="Preset", description="Model hyperparameters"),
        "split": Param(DEFAULT_HOLDOUT, type="string", pattern=SPLIT_PATTERN, maxLength=40, title="Holdout split"),
        "tolerance": Param(
            0.0, type="number", **bounds(0, 1), title="Tolerance", description="RMSE slack vs. the champion"
        ),
        "recall_tolerance": Param(
            0.0,
            type="number",
            **bounds(0, 1),
            title="Recall tolerance",
            description="Recall@10 slack vs. the champion",
        ),
    },
)
def movielens_train() -> None:
    @task
    def train_and_register() -> dict:
        """Train and register one model; the registry decides champion / rejected."""
        from recsys.native_log import start_tensorflow

        start_tensorflow()  # its native start-up log would show as ERROR lines in the task log
        from recsys.config import get_settings
        from recsys.db.engine import check_connection
        from recsys.db.store import load_movielens
        from recsys.model.config import load_config
        from recsys.model.pipeline import train_and_register as run
        from recsys.model.registry import Gate

        params = get_current_context()["params"]
        with recsys_engine() as engine:
            check_connection(engine)
            with user_errors_fail_fast():
                cfg = load_config(params["preset"])
                result = run(
                    load_movielens(engine),
                    params["split"],
                    cfg,
                    engine,
                    get_settings().artifacts_path,
                    gate=Gate(float(params["tolerance"]), float(params["recall_tolerance"])),
                    promote=True,
                    verbose=0,
                )
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float | str) or v is None}
        return {
            "version_id": result.version_id,
            "status": result.decision.status,
            "reason": result.decision.reason,
            "previous_champion": result.decision.previous_champion,
            "artifact": str(result.artifact),
            "preset": cfg.name,
            "split": params["split"],
            "metrics": metrics,
        }

    @task(outlets=[CHAMPION_MODEL], execution_timeout=timedelta(minutes=5))
    def champion_promoted(decision: dict) -> dict:
        """Announce a new champion (asset event), after checking the registry agrees."""
        from airflow.sdk.exceptions import AirflowSkipException

        from recsys.model.registry import get_champion

        if decision["status"] != "champion":
            raise AirflowSkipException(f"{decision['version_id']} is {decision['status']}: {decision['reason']}")
        with recsys_engine() as engine:
            champion = get_champion(engine)
        if champion is None or champion.version_id != decision["version_id"]:
            current = champion.version_id if champion else None
            raise AirflowSkipException(f"{decision['version_id']} is no longer champion (now: {current})")
        event = {
            "version_id": champion.version_id,
            "recall@10": decision["metrics"].get("recall@10"),
            "rmse": decision["metrics"].get("rmse"),
            "split": champion.split,
        }
        get_current_context()["outlet_events"][CHAMPION_MODEL].extra = event
        return event

    champion_promoted(train_and_register())


movielens_train()
