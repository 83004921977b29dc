"""What the tests read back from a recsys database, and the settings and URLs they use to reach it."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from recsys.config import OFFICIAL_UDATA_SHA256, Settings
from recsys.db.engine import make_engine


def make_settings(**overrides) -> Settings:
    """Settings that never touch the user's .local state or the network."""
    values = {"data_sha256": OFFICIAL_UDATA_SHA256, "download_retries": 2, "download_timeout_s": 5.0}
    values.update(overrides)
    return Settings(**values)


def as_role(url: str, role: str = "recsys_api") -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


def published(engine: sa.Engine) -> sa.Row | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT run_id, model_version FROM recsys.published_ranking")).first()


def ranking_digest(engine: sa.Engine) -> tuple:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "SELECT count(*), sum(score::numeric), sum(rank), count(*) FILTER (WHERE seen), min(run_id), max(run_id), "
                    "count(predicted_rating), sum(predicted_rating::numeric) FROM recsys.current_ranked_scores"
                )
            ).one()
        )


SNAPSHOT_SQL = """
SELECT (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies),
       (SELECT count(*) FROM recsys.ratings), (SELECT count(*) FROM recsys.split_tests),
       (SELECT md5(string_agg(user_id || ':' || movie_id || ':' || rating || ':' || rated_at, ','
                              ORDER BY user_id, movie_id)) FROM recsys.ratings),
       (SELECT md5(string_agg(movie_id || title || coalesce(release_year, 0) || array_to_string(genres, '/'), ','
                              ORDER BY movie_id)) FROM recsys.movies),
       (SELECT count(*) FROM recsys.datasets),
       (SELECT md5(string_agg(concat_ws(':', user_id, age, gender, occupation, zip_code), ',' ORDER BY user_id))
          FROM recsys.users)
"""


def snapshot(url: str) -> tuple:
    """The feature store's counts and content digests, users too (what an ingest that fails must leave alone)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        row = tuple(conn.execute(sa.text(SNAPSHOT_SQL)).one())
    engine.dispose()
    return row


def db_fingerprint(engine: sa.Engine) -> str:
    """A digest of everything a hostile request might try to change."""
    with engine.connect() as conn:
        parts = conn.execute(
            sa.text(
                "SELECT (SELECT md5(string_agg(movie_id || ':' || title, ',' ORDER BY movie_id)) FROM recsys.movies), "
                "(SELECT count(*) || ':' || sum(rating) FROM recsys.ratings), (SELECT count(*) FROM recsys.users), "
                "(SELECT string_agg(version_id || status, ',' ORDER BY version_id) FROM recsys.model_versions), "
                "(SELECT run_id || model_version FROM recsys.published_ranking), "
                "(SELECT count(*) FROM pg_tables WHERE schemaname = 'recsys')"
            )
        ).one()
    return hashlib.sha256(repr(tuple(parts)).encode()).hexdigest()
