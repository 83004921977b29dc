"""Write the feature store in one transaction with COPY, and read it back as frames.

Readers see the old data set or the new one, never a mix and never a wait: the rows are
deleted and the tables refilled inside a single transaction, so a failure anywhere (a
constraint, a dropped connection, a killed process) rolls back to exactly the previous
state, and readers keep reading the old rows (MVCC) until the commit. ``TRUNCATE`` would
be cheaper but locks readers out for the whole load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd
import psycopg
import sqlalchemy as sa

from recsys.data.movielens import MovieLens
from recsys.errors import DataError

# Serialises concurrent ingests; an arbitrary constant unique to this lock.
INGEST_LOCK_ID = 7_300_001

_TABLES = {
    "users": ("user_id", "age", "gender", "occupation", "zip_code"),
    "movies": ("movie_id", "title", "release_date", "release_year", "imdb_url", "genres"),
    "ratings": ("user_id", "movie_id", "rating", "rated_at"),
    "split_tests": ("split", "user_id", "movie_id"),
}


def current_members(engine: sa.Engine) -> dict[str, str] | None:
    """sha256 of each member of the loaded data set, if the tables still hold what was recorded."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT member_sha256, users, movies, ratings FROM recsys.datasets ORDER BY dataset_id DESC LIMIT 1"
            )
        ).first()
        if row is None:
            return None
        counts = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies), "
                "(SELECT count(*) FROM recsys.ratings)"
            )
        ).one()
    return row.member_sha256 if tuple(counts) == (row.users, row.movies, row.ratings) else None


def replace_movielens(engine: sa.Engine, data: MovieLens, source: str) -> None:
    """Replace the feature store's contents with ``data`` atomically."""
    rows = {
        "users": data.users.itertuples(index=False),
        "movies": (
            (m.movie_id, m.title, m.release_date, _none(m.release_year), m.imdb_url, list(m.genres))
            for m in data.movies.itertuples(index=False)
        ),
        "ratings": (
            (r.user_id, r.movie_id, r.rating, r.rated_at.to_pydatetime()) for r in data.ratings.itertuples(index=False)
        ),
        "split_tests": data.split_tests.itertuples(index=False),
    }
    try:
        _replace(engine, data, source, rows)
    except (psycopg.Error, sa.exc.DBAPIError) as exc:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()
        raise DataError(f"the database rejected the load, nothing was changed: {'; '.join(detail)}") from exc


def _replace(engine: sa.Engine, data: MovieLens, source: str, rows: dict[str, Iterable[tuple]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": INGEST_LOCK_ID})
        for table in ("split_tests", "ratings", "movies", "users"):  # referencing tables first
            conn.execute(sa.text(f"DELETE FROM recsys.{table}"))
        cursor = conn.connection.cursor()
        for table, columns in _TABLES.items():
            _copy(cursor, table, columns, rows[table])
        conn.execute(
            sa.text(
                "INSERT INTO recsys.datasets (source, fingerprint, member_sha256, users, movies, ratings) "
                "VALUES (:source, :fingerprint, CAST(:members AS jsonb), :users, :movies, :ratings)"
            ),
            {
                "source": source,
                "fingerprint": data.fingerprint,
                "members": json.dumps(data.member_sha256),
                "users": len(data.users),
                "movies": len(data.movies),
                "ratings": len(data.ratings),
            },
        )
        conn.execute(sa.text("ANALYZE recsys.users, recsys.movies, recsys.ratings, recsys.split_tests"))


def load_movielens(engine: sa.Engine) -> MovieLens:
    """The feature store as the same frames the archive parser produces."""
    with engine.connect() as conn:
        users = pd.read_sql(sa.text("SELECT * FROM recsys.users ORDER BY user_id"), conn)
        movies = pd.read_sql(sa.text("SELECT * FROM recsys.movies ORDER BY movie_id"), conn)
        ratings = pd.read_sql(sa.text("SELECT * FROM recsys.ratings ORDER BY user_id, movie_id"), conn)
        split_tests = pd.read_sql(
            sa.text("SELECT split, user_id, movie_id FROM recsys.split_tests ORDER BY 1, 2, 3"), conn
        )
        fingerprint = conn.execute(
            sa.text("SELECT fingerprint FROM recsys.datasets ORDER BY dataset_id DESC LIMIT 1")
        ).scalar()
    if fingerprint is None or users.empty:
        raise DataError("the feature store is empty; run `recsys ingest` first")
    movies["release_year"] = movies["release_year"].astype("Int64")
    movies["genres"] = movies["genres"].map(list)
    ratings["rated_at"] = pd.to_datetime(ratings["rated_at"], utc=True)
    genres = sorted({g for gs in movies["genres"] for g in gs})
    occupations = sorted(users["occupation"].unique())
    return MovieLens(users, movies, ratings, split_tests, genres, occupations, fingerprint)


def _copy(cursor, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    """COPY through psycopg 3, which adapts each Python value (lists become text[])."""
    with cursor.copy(f"COPY recsys.{table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _none(value):
    return None if pd.isna(value) else value
