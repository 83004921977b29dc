"""Shared pieces of the movielens DAGs: assets, default task arguments, the database URL.

Not a DAG file (``.airflowignore`` keeps the DAG processor from parsing it on its own).
At parse time it imports the standard library, ``airflow.sdk`` (which the DAG processor has
already loaded) and ``recsys.config``, the settings module, which imports nothing else of
``recsys`` but its error classes and the shard default (tests/airflow/test_dags.py checks that).
Everything else from ``recsys`` is imported inside the functions that tasks call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from recsys.config import DEFAULT_TRAIN_SPLIT, AirflowSettings, get_airflow_settings

if TYPE_CHECKING:
    import sqlalchemy as sa

CONN_ID = "recsys_db"
OWNER = "recsys"
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
# The weekly retrain's holdout (recsys.config owns it; tests/airflow/test_dags.py checks that the
# CLI's recsys.model.commands.DEFAULT_HOLDOUT agrees).
DEFAULT_HOLDOUT = DEFAULT_TRAIN_SPLIT

# Assets: URIs in a project scheme (no Airflow normaliser applies), named for the UI.
FEATURE_STORE = Asset(
    name="movielens_feature_store",
    uri="recsys://feature-store/movielens",  # whichever data set RECSYS_DATASET loads
    group="recsys",
    extra={"tables": "recsys.users, recsys.movies, recsys.ratings, recsys.split_tests"},
)
CHAMPION_MODEL = Asset(
    name="movielens_champion_model",
    uri="recsys://model-registry/champion",
    group="recsys",
    extra={"table": "recsys.model_versions"},
)
PUBLISHED_RANKING = Asset(
    name="movielens_published_ranking",
    uri="recsys://ranking/published",
    group="recsys",
    extra={"view": "recsys.current_ranked_scores"},
)


def bounds(low: float, high: float) -> dict[str, Any]:
    """A number Param's range, checked when a run is created, out of reach of the trigger form's box.

    The form hands a top-level ``minimum``/``maximum`` to its number box, which silently
    clamps what was typed (0 became 1); under ``allOf`` the same range is still validated,
    and an out-of-range value is refused with a message instead.
    """
    return {"allOf": [{"minimum": low, "maximum": high}]}


def settings() -> AirflowSettings:
    """The RECSYS_* settings of the Airflow side; a bad value fails the DAG file's import in one line."""
    return get_airflow_settings()


def default_args(execution_timeout: timedelta, *, retries: int = 2) -> dict[str, Any]:
    """Task defaults: owner, retries with exponential backoff, a hard timeout per try.

    ``RECSYS_AIRFLOW_RETRY_DELAY_S`` shortens the first retry delay (the tests set it to
    about a second so a retried shard does not make the suite wait a minute).
    """
    first_delay = settings().airflow_retry_delay_s
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(seconds=first_delay),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": execution_timeout,
    }


def recsys_db_url() -> str:
    """The recsys database as a plain URL, from the Airflow connection ``recsys_db``.

    Called inside tasks only: connections are resolved at run time (env var
    ``AIRFLOW_CONN_RECSYS_DB``, a secrets backend or the UI), never at parse time.
    Airflow renders the scheme as ``postgres://``; ``recsys.db.engine.make_engine`` accepts it.
    """
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(CONN_ID)
    except Exception as exc:  # AirflowNotFoundException and friends: say what to set
        raise RuntimeError(
            f"Airflow connection {CONN_ID!r} is not defined: set AIRFLOW_CONN_RECSYS_DB "
            "(e.g. postgresql://user:password@host:5432/recsys) or add it in Admin > Connections"
        ) from exc
    return conn.get_uri()


@contextmanager
def recsys_engine() -> Iterator[sa.Engine]:
    """The recsys database for one task: an engine on the ``recsys_db`` connection, disposed after.

    Why not ``PostgresHook``: the library takes SQLAlchemy engines on psycopg 3
    (``recsys.db.engine.make_engine``), and the hook builds psycopg2 ones; the provider stays
    installed for the connection type in the UI's Connections form.
    """
    from recsys.db.engine import make_engine

    engine = make_engine(recsys_db_url())
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def user_errors_fail_fast() -> Iterator[None]:
    """Turn problems a retry cannot fix (bad data, bad config) into a failure without retries.

    ``recsys`` raises ``DataError``/``ConfigError`` for those; retrying would only repeat
    the same message three times with growing delays. Unreachable databases and failed
    downloads stay ordinary exceptions, so they are retried with backoff.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from recsys.errors import ConfigError, DataError

    try:
        yield
    except (DataError, ConfigError) as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
