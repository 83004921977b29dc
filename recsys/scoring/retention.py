"""Which runs' tables stay after a publish: the published run attached, a few kept, the rest dropped.

The SQL is in ``sql/queries/ranking.sql``; detaching and dropping a run's table is ``runs``'s.
"""

from __future__ import annotations

import sqlalchemy as sa

from recsys.db.sql import dbapi, queries
from recsys.scoring.runs import PublishError, detach_run_table, drop_run_table


def cleanup(engine: sa.Engine, keep: int = 2) -> list[int]:
    """Detach superseded runs; drop failed runs and all but the ``keep`` newest superseded ones.

    Only the published run stays attached to ``recsys.ranked_scores``. Readers never reach
    a superseded run (they follow the pointer), but every attached leaf costs each lookup:
    a generic plan locks all partitions before pruning them (measured: docs/ARCHITECTURE.md).
    Kept runs stay as tables of their own (``recsys.ranked_scores_r<run>``) for analysis.
    Partitions are detached CONCURRENTLY (no lock that blocks readers, and it waits for
    queries that may still read them).
    """
    if keep < 0:
        raise PublishError(f"keep must be >= 0, got {keep}")
    with engine.begin() as conn:
        db = dbapi(conn)
        doomed = [run_id for (run_id,) in queries("ranking").doomed_runs(db, keep=keep)]
        attached = {name for (name,) in queries("ranking").attached_tables(db)}
        superseded = [run_id for (run_id,) in queries("ranking").superseded_runs(db)]
        retired = sorted(r for r in superseded if f"ranked_scores_r{r}" in attached and r not in doomed)
    for run_id in retired:
        detach_run_table(engine, run_id)
    dropped = []
    for run_id in sorted(doomed):
        drop_run_table(engine, run_id, attached=f"ranked_scores_r{run_id}" in attached)
        dropped.append(run_id)
    if dropped:
        with engine.begin() as conn:
            queries("ranking").mark_dropped(dbapi(conn), run_ids=dropped)
    return dropped
