"""movielens_ingest: download, validate and load MovieLens 100K into the feature store.

A thin TaskFlow wrapper around ``recsys.ingest.ingest``; the DAG file imports only
``airflow.sdk`` and the shared helpers, so it parses in milliseconds.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from movielens_common import (
    FEATURE_STORE,
    START_DATE,
    default_args,
    recsys_db_url,
    recsys_engine,
    user_errors_fail_fast,
)

DOC_MD = """
### MovieLens 100K → feature store

Downloads the archive (or reads `source`), checks its content fingerprint
(`sha256(u.data)`), member sizes, encoding, row counts and referential integrity, then replaces
`recsys.users`, `recsys.movies`, `recsys.ratings` and `recsys.split_tests` in **one
transaction**: a failure leaves the database exactly as it was.

| task | what it does |
|---|---|
| `load_movielens` | `recsys.ingest.ingest()`; a no-op when the same data set (every member's sha256) is already loaded |
| `feature_store_updated` | re-counts the tables and emits the **`movielens_feature_store`** asset event, or is *skipped* when nothing changed (so `movielens_train` is not re-triggered for nothing) |

**Params**: `source` (https URL, `file://` URL or absolute path; empty = `RECSYS_DATA_URL`),
`force` (reload even if already loaded).
Bad data and a missing local archive fail at once (no retries: a retry would read the
same bytes, or find the same nothing); network and database errors are retried with
exponential backoff.
Database: the Airflow connection `recsys_db`.
"""


@dag(
    dag_id="movielens_ingest",
    description="Download, validate and load MovieLens 100K into the recsys feature store",
    doc_md=DOC_MD,
    schedule=CronTriggerTimetable("0 1 * * 0", timezone="UTC"),  # Sundays 01:00, before training
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    default_args=default_args(timedelta(minutes=30), retries=3),
    tags=["recsys", "movielens", "ingest"],
    params={
        "source": Param(
            None,
            type=["null", "string"],
            maxLength=2048,
            pattern=r"^(https://|file://|/)[^\s]*$",
            title="Source",
            description="https URL, file:// URL or absolute path of the data set's archive (its layout: "
            "RECSYS_DATASET); empty = RECSYS_DATA_URL",
        ),
        "force": Param(False, type="boolean", title="Force", description="Reload even if the same data is loaded"),
    },
)
def movielens_ingest() -> None:
    @task
    def load_movielens() -> dict:
        """Run the library's ingestion against the ``recsys_db`` connection."""
        from dataclasses import asdict

        from recsys.config import get_settings
        from recsys.ingest import ingest

        params = get_current_context()["params"]
        with user_errors_fail_fast():
            result = ingest(get_settings(), recsys_db_url(), source=params.get("source") or None, force=params["force"])
        return asdict(result)

    @task(outlets=[FEATURE_STORE], execution_timeout=timedelta(minutes=5))
    def feature_store_updated(result: dict) -> dict:
        """Check the tables as readers see them, then announce the new data set (or skip)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from recsys.db.store import summary

        with recsys_engine() as engine:
            found = summary(engine)
        expected = {k: result[k] for k in found}
        if found != expected:
            raise RuntimeError(f"feature store does not match the loaded data set: found {found}, expected {expected}")
        if not result["loaded"]:
            raise AirflowSkipException(f"data set {result['fingerprint'][:12]} was already loaded; no asset event")
        get_current_context()["outlet_events"][FEATURE_STORE].extra = found
        return found

    feature_store_updated(load_movielens())


movielens_ingest()
