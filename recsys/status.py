"""``recsys status``: what is served now and how it got there, for a console and a page.

One read-only snapshot of the registry (the champion, the newest versions with the gate's
reason) and of the ranking runs (the published one, the newest ones). The Airflow plugin's
status page renders the same snapshot; ``make run`` prints it after training and publishing.
"""

from __future__ import annotations

import argparse
from typing import Any

import sqlalchemy as sa

RECENT = 5  # precompute runs in a snapshot (the registry's query gives its five newest versions)


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "status", help="the champion, the newest model and the gate's decision, and the published ranking"
    )
    cmd.set_defaults(handler=status_command)


def read_status(engine: sa.Engine) -> dict[str, Any]:
    """One snapshot (one read-only transaction) of what is being served and how it got there."""
    from recsys.model.registry import champion_summary, newest_versions_summary
    from recsys.scoring.runs import ranking_status

    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        champion = champion_summary(conn)
        ranking = ranking_status(conn, runs=RECENT)
        published = ranking["published"]
        return {
            "champion": None if champion is None else _jsonable(champion),
            "published": None if published is None else _jsonable(published),
            "precompute_runs": [_jsonable(run) for run in ranking["precompute_runs"]],
            "models": [_jsonable(version) for version in newest_versions_summary(conn)],
        }


def describe(status: dict[str, Any]) -> list[str]:
    """The snapshot as console lines: the newest model and its verdict, the champion, the ranking."""
    lines = []
    if status["models"]:
        newest = status["models"][0]
        made = ", ".join(str(part) for part in (newest["preset"], newest["split"]) if part)
        lines.append(f"newest model:   {newest['version_id']}{f' ({made})' if made else ''}: "
                     f"{newest['status']} - {newest['decision_reason']}")  # fmt: skip
    else:
        lines.append("newest model:   none registered yet (recsys train)")
    champion = status["champion"]
    lines.append(
        f"champion:       {champion['version_id']} (promoted {champion['promoted_at']})"
        if champion
        else "champion:       none"
    )
    published = status["published"]
    if published:
        lines.append(f"published:      run {published['run_id']}: {published['rows']:,} pairs ({published['users']} users "
                     f"x {published['movies']} movies) scored with model {published['model_version']}, "
                     f"published {published['published_at']}")  # fmt: skip
    else:
        lines.append("published:      no ranking yet (recsys precompute)")
    return lines


def status_command(args: argparse.Namespace) -> int:
    from recsys.db.engine import check_connection, database_url, make_engine

    engine = make_engine(database_url())
    try:
        check_connection(engine)
        print("\n".join(describe(read_status(engine))))
    finally:
        engine.dispose()
    return 0


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
