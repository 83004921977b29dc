"""The feature store's owner: write it in one transaction with COPY, read it back as frames.

Readers see the old data set or the new one, never a mix and never a wait: the rows are
deleted and the tables refilled inside a single transaction, so a failure anywhere (a
constraint, a dropped connection, a killed process) rolls back to exactly the previous
state, and readers keep reading the old rows (MVCC) until the commit. ``TRUNCATE`` would
be cheaper but locks readers out for the whole load.

Every statement on ``recsys.users``, ``movies``, ``ratings``, ``split_tests`` and
``datasets`` is a named query in ``sql/queries/feature_store.sql``; nothing else in the
project touches these tables (``tests/test_sql_owners.py`` keeps it so).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from aiosql.queries import Queries
from aiosql.types import QueryFn
from psycopg import sql

from recsys.data.adapters import DEFAULT_DATASET, RatingScale, adapter
from recsys.data.movielens import MovieLens
from recsys.db.sql import dbapi, queries
from recsys.errors import DataError

# Serialises concurrent ingests; an arbitrary constant unique to this lock.
INGEST_LOCK_ID = 7_300_001

_TABLES = {
    "users": ("user_id", "age", "gender", "occupation", "zip_code"),
    "movies": ("movie_id", "title", "release_date", "release_year", "imdb_url", "genres"),
    "ratings": ("user_id", "movie_id", "rating", "rated_at"),
    "split_tests": ("split", "user_id", "movie_id"),
}


def _sql() -> Queries:
    return queries("feature_store")


def current_members(engine: sa.Engine) -> dict[str, str] | None:
    """sha256 of each member of the loaded data set, if the tables still hold what was recorded."""
    with engine.connect() as conn:
        row = _sql().newest_dataset_members(dbapi(conn))
        if row is None:
            return None
        member_sha256, *recorded = row
        counts = _sql().table_counts(dbapi(conn))
    return member_sha256 if tuple(counts) == tuple(recorded) else None


def summary(engine: sa.Engine) -> dict:
    """Users, movies and ratings as readers see them, and the newest data set's fingerprint."""
    with engine.connect() as conn:
        users, movies, ratings, fingerprint = _sql().feature_store_summary(dbapi(conn))
    return {"users": users, "movies": movies, "ratings": ratings, "fingerprint": fingerprint}


def newest_fingerprint(conn: sa.Connection) -> str | None:
    """``sha256(u.data)`` of the newest load, inside the caller's transaction (None before any)."""
    return _sql().newest_fingerprint(dbapi(conn))


def replace_movielens(engine: sa.Engine, data: MovieLens, source: str) -> None:
    """Replace the feature store's contents with ``data`` atomically."""
    # A data set without a side column (no demographics) stores NULL in it.
    users = data.users.reindex(columns=list(_TABLES["users"])).astype(object)
    rows = {
        "users": (tuple(_none(v) for v in u) for u in users.itertuples(index=False)),
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
        q, pg = _sql(), dbapi(conn)
        q.lock_ingest(pg, lock_id=INGEST_LOCK_ID)
        for delete in (q.delete_split_tests, q.delete_ratings, q.delete_movies, q.delete_users):
            delete(pg)  # referencing tables first
        cursor = pg.cursor()
        for table, columns in _TABLES.items():
            _copy(cursor, table, columns, rows[table])
        q.record_dataset(
            pg,
            source=source,
            fingerprint=data.fingerprint,
            members=json.dumps(data.member_sha256),
            users=len(data.users),
            movies=len(data.movies),
            ratings=len(data.ratings),
            dataset=data.dataset,
        )
        q.analyze_feature_store(pg)


def load_movielens(engine: sa.Engine) -> MovieLens:
    """The feature store as the same frames the archive parser produces.

    Only the side columns the loaded data set's adapter fills, and every loaded user has,
    come back, so a data set without demographics (ml-csv; own-csv without a users.csv)
    gives frames, and so a model, without them.
    """
    with engine.connect() as conn:
        users = _frame(conn, _sql().users_frame)
        movies = _frame(conn, _sql().movies_frame)
        ratings = _frame(conn, _sql().ratings_frame)
        split_tests = _frame(conn, _sql().split_tests_frame)
        fingerprint = newest_fingerprint(conn)
        name = _sql().newest_dataset_adapter(dbapi(conn))
    if fingerprint is None or users.empty:
        raise DataError("the feature store is empty; run `recsys ingest` first")
    source = adapter(name)
    # A column NULL for some user has no value to feed the model for them: left out, like one
    # the adapter never fills. The parsers fill a side column for every user or for none.
    users = users[["user_id", *(c for c in source.user_columns if users[c].notna().all())]]
    movies = movies[["movie_id", *source.movie_columns]]
    if "release_year" in movies:
        movies["release_year"] = movies["release_year"].astype("Int64")
    if "genres" in movies:
        movies["genres"] = movies["genres"].map(list)
    if source.scale.step == 1:  # whole stars come back as the integers the parser gave
        ratings["rating"] = ratings["rating"].round().astype("int64")
    ratings["rated_at"] = pd.to_datetime(ratings["rated_at"], utc=True)
    genres = sorted({g for gs in movies.get("genres", []) for g in gs})
    occupations = sorted(users["occupation"].unique()) if "occupation" in users else []
    return MovieLens(
        users, movies, ratings, split_tests, genres, occupations, fingerprint, dataset=name, scale=source.scale
    )


def rating_triples(conn: sa.Connection) -> pd.DataFrame:
    """user_id, movie_id, rating of every rating (in no particular order)."""
    return _frame(conn, _sql().rating_triples_frame)


def user_ids(conn: sa.Connection) -> pd.Series:
    """Every user id, ascending."""
    return _frame(conn, _sql().user_ids_frame)["user_id"]


def movie_ids(conn: sa.Connection) -> pd.Series:
    """Every movie id, ascending."""
    return _frame(conn, _sql().movie_ids_frame)["movie_id"]


def movie_titles(conn: sa.Connection) -> pd.Series:
    """Every distinct title, sorted."""
    return _frame(conn, _sql().movie_titles_frame)["title"]


def rating_scale(bind: sa.Engine | sa.Connection) -> RatingScale:
    """The loaded data set's rating scale (its adapter's); the default data set's before any load."""
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            return rating_scale(conn)
    return adapter(_sql().newest_dataset_adapter(dbapi(bind)) or DEFAULT_DATASET).scale


def newest_dataset_id(conn: sa.Connection) -> int | None:
    """The id of the load the tables hold (None before any)."""
    return _sql().newest_dataset_id(dbapi(conn))


def catalogue_size(conn: sa.Connection) -> tuple[int, int]:
    """(users, movies) as readers see them, inside the caller's transaction."""
    users, movies = _sql().catalogue_size(dbapi(conn))
    return users, movies


def rated_pairs(conn: sa.Connection, user_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, movie ids) of the ratings these users gave, as two int64 arrays."""
    rated = pd.read_sql(_sql().rated_pairs_frame.sql, conn, params={"user_ids": list(user_ids)})
    return rated["user_id"].to_numpy(np.int64), rated["movie_id"].to_numpy(np.int64)


def _frame(conn: sa.Connection, query: QueryFn) -> pd.DataFrame:
    """A named query's rows as ``pd.read_sql`` builds them, so the frames keep their dtypes.

    Its text (psycopg's ``%(name)s`` style) goes through ``exec_driver_sql`` on the caller's
    connection, inside its transaction.
    """
    return pd.read_sql(query.sql, conn)


def _copy(cursor: psycopg.Cursor, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    """COPY through psycopg 3, which adapts each Python value (lists become text[]).

    ``COPY ... FROM STDIN`` is psycopg's copy API, not a query aiosql can run, so it is
    built here. The table and columns are this module's constants, written unquoted so the
    statement reads as it always did (pg_stat_activity; tests/data/test_faults.py waits for it).
    """
    statement = sql.SQL(f"COPY recsys.{table} ({', '.join(columns)}) FROM STDIN")
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _none(value):
    return None if pd.isna(value) else value
