"""Which runs' tables stay after a publish: the published run attached, a few kept, the rest dropped."""

from __future__ import annotations

import sqlalchemy as sa

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
        doomed = (
            conn.execute(
                sa.text(
                    "SELECT run_id FROM (SELECT run_id FROM recsys.precompute_runs WHERE status = 'failed' "
                    "UNION SELECT run_id FROM (SELECT run_id FROM recsys.precompute_runs "
                    "WHERE status = 'superseded' ORDER BY run_id DESC OFFSET :keep) old) r "
                    "WHERE to_regclass('recsys.ranked_scores_r' || run_id) IS NOT NULL"
                ),
                {"keep": keep},
            )
            .scalars()
            .all()
        )
        attached = set(
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'recsys.ranked_scores'::regclass"
                )
            ).scalars()
        )
        superseded = conn.execute(
            sa.text("SELECT run_id FROM recsys.precompute_runs WHERE status = 'superseded'")
        ).scalars()
        retired = sorted(r for r in superseded if f"ranked_scores_r{r}" in attached and r not in doomed)
    for run_id in retired:
        detach_run_table(engine, run_id)
    dropped = []
    for run_id in sorted(doomed):
        drop_run_table(engine, run_id, attached=f"ranked_scores_r{run_id}" in attached)
        dropped.append(run_id)
    if dropped:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE recsys.precompute_runs SET status = 'dropped' "
                    "WHERE run_id = ANY(:ids) AND status = 'superseded'"
                ),
                {"ids": dropped},
            )
    return dropped
