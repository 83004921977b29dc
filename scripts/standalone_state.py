"""Metadata chores of ``scripts/standalone.sh`` (``make airflow``), run while no scheduler is.

Commands (the environment of ``scripts/airflow_env.sh``)::

    python scripts/standalone_state.py prepare    # before the components start
    python scripts/standalone_state.py interrupted  # after they stopped

``prepare`` refuses to go on when a scheduler of this metadata database is alive, pauses the
scheduled DAGs (unless ``RECSYS_AIRFLOW_SCHEDULES=1``) and drops the asset triggers queued for
them (events of ``make run``'s ``airflow dags test`` runs, already handled there), keeps the
on-demand ``movielens_rerank`` unpaused, then does what ``interrupted`` does.

``interrupted`` marks the DAG runs a stopped (or killed) scheduler left running or queued as
failed, with their unfinished tasks, and fails the recsys precompute run such an Airflow run
had started (``recsys.scoring.runs.fail_run``: status failed, tables dropped; the published
ranking is untouched). Runs of ``airflow dags test`` (``make run``) are left alone.
"""

from __future__ import annotations

import sys

SCHEDULED = ("movielens_ingest", "movielens_train", "movielens_precompute")
ON_DEMAND = ("movielens_rerank",)
REASON = "interrupted: make airflow was stopped while this run was in progress"


def scheduler_alive() -> bool:
    from airflow.jobs.job import most_recent_job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    job = most_recent_job(SchedulerJobRunner.job_type)
    return bool(job and job.is_alive())


def pause_schedules() -> list[str]:
    """Pause the scheduled DAGs and forget their queued asset triggers; returns the paused ones."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    from recsys.config import AirflowSettings, load_settings

    keep_schedules = load_settings(AirflowSettings).airflow_schedules
    with create_session() as session:
        dags = {
            d.dag_id: d for d in session.scalars(select(DagModel).where(DagModel.dag_id.in_(SCHEDULED + ON_DEMAND)))
        }
        for dag_id in ON_DEMAND:
            if dag_id in dags:
                dags[dag_id].is_paused = False  # runs only when someone triggers it
        if keep_schedules:
            return []
        for dag_id in SCHEDULED:
            if dag_id in dags:
                dags[dag_id].is_paused = True
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id.in_(SCHEDULED)))
    return [d for d in SCHEDULED if d in dags]


def fail_interrupted() -> list[str]:
    """Fail the runs no scheduler will ever finish; returns ``dag_id/run_id`` of each."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, State, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    failed: list[tuple[str, str]] = []
    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.state.in_([DagRunState.RUNNING, DagRunState.QUEUED]))).all()
        for run in runs:
            if run.triggered_by == DagRunTriggeredByType.TEST:  # `airflow dags test` of make run: not ours
                continue
            tis = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
            ).all()
            for ti in tis:
                if ti.state in State.unfinished:
                    started = ti.state is not None and ti.state != TaskInstanceState.SCHEDULED
                    ti.set_state(
                        TaskInstanceState.FAILED if started else TaskInstanceState.UPSTREAM_FAILED, session=session
                    )
            run.set_state(DagRunState.FAILED)
            run.note = REASON if not run.note else run.note
            failed.append((run.dag_id, run.run_id))
    for dag_id, run_id in failed:
        if dag_id == "movielens_precompute":
            fail_precompute(run_id)
    return [f"{d}/{r}" for d, r in failed]


def fail_precompute(airflow_run_id: str) -> None:
    """The recsys run this Airflow run started (``start_run``'s XCom), failed and its tables dropped."""
    from airflow.models.connection import Connection
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=airflow_run_id, dag_ids="movielens_precompute", task_ids="start_run")
        ).first()
        run_id = XComModel.deserialize_value(row) if row is not None else None
    if run_id is None:  # start_run never finished: no recsys run exists
        return
    from recsys.db.engine import make_engine
    from recsys.scoring.runs import fail_run

    engine = make_engine(Connection.get_connection_from_secrets("recsys_db").get_uri())
    try:
        fail_run(engine, int(run_id), f"Airflow run {airflow_run_id}: {REASON}")
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    if argv not in (["prepare"], ["interrupted"]):
        print("usage: standalone_state.py prepare|interrupted", file=sys.stderr)
        return 2
    if argv == ["prepare"]:
        if scheduler_alive():
            print("error: an Airflow scheduler is already running on this metadata database", file=sys.stderr)
            return 1
        paused = pause_schedules()
        if paused:
            print(f"paused (unpause in the UI to let them run on schedule): {', '.join(paused)}")
    for name in fail_interrupted():
        print(f"marked failed ({REASON.split(':')[0]}): {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
