"""The MovieLens CSV adapter: ml-latest-small, ml-25m and ml-32m (``RECSYS_DATASET=ml-csv``).

The layout GroupLens has used since 2016, in a top-level folder of the zip:
``ratings.csv`` (``userId,movieId,rating,timestamp``, half stars 0.5-5.0) and
``movies.csv`` (``movieId,title,genres``: genres ``|``-separated, ``(no genres listed)``
for none, titles quoted when they hold a comma, the year as a trailing ``(YYYY)``).
``tags.csv`` and ``links.csv`` are optional and not read. UTF-8. There are no
demographics: the users are the ids that rate, and the model has no user side features.
Every check names the member and line, as the ML-100K adapter does.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.data.adapters import ADAPTERS
from recsys.data.archive import (
    check_timestamp,
    csv_rows,
    decode_utf8,
    open_layout,
    open_zip,
    parse_int,
    parse_positive,
    parse_rating,
    ratings_frame,
    require_unique,
)
from recsys.data.clean_ratings import read_clean
from recsys.data.movielens import MovieLens, title_year
from recsys.errors import DataError

ADAPTER = ADAPTERS["ml-csv"]
RATINGS, MOVIES = "ratings.csv", "movies.csv"
RATINGS_HEADER = ("userId", "movieId", "rating", "timestamp")
MOVIES_HEADER = ("movieId", "title", "genres")
NO_GENRES = "(no genres listed)"


def read_archive(path: Path | str, expected_sha256: str | None, *, max_member_bytes: int | None = None) -> MovieLens:
    """Read, fingerprint and validate a MovieLens CSV archive, or raise ``DataError``."""
    path = Path(path)
    with open_zip(path) as zf:
        archive = open_layout(zf, path, ADAPTER, max_member_bytes or ADAPTER.max_member_bytes)
        raw = archive.read_fingerprinted(RATINGS, expected_sha256)
        fingerprint = archive.member_sha256[RATINGS]
        movies = _parse_movies(archive.text(MOVIES, encoding="utf-8"))
    ratings = _read_ratings(raw, set(movies["movie_id"]))
    users = pd.DataFrame({"user_id": pd.unique(ratings["user_id"])}).sort_values("user_id", ignore_index=True)
    return MovieLens(
        users=users,
        movies=movies,
        ratings=ratings,
        split_tests=pd.DataFrame(columns=["split", "user_id", "movie_id"]),
        genres=sorted({g for gs in movies["genres"] for g in gs}),
        occupations=[],
        fingerprint=fingerprint,
        member_sha256=dict(sorted(archive.member_sha256.items())),
        dataset=ADAPTER.name,
        scale=ADAPTER.scale,
    )


def _parse_movies(content: str) -> pd.DataFrame:
    rows = []
    for lineno, (mid, raw_title, genres) in csv_rows(content, MOVIES, MOVIES_HEADER):
        movie_id = parse_positive(mid, "movie id", MOVIES, lineno)
        title = " ".join(raw_title.split())
        names = [] if genres.strip() in ("", NO_GENRES) else [g.strip() for g in genres.split("|")]
        rows.append((movie_id, title, None, title_year(title), None, names))
    if not rows:
        raise DataError("no movies", source=MOVIES)
    movies = pd.DataFrame(rows, columns=["movie_id", "title", "release_date", "release_year", "imdb_url", "genres"])
    movies["release_year"] = movies["release_year"].astype("Int64")
    require_unique(movies, "movie_id", MOVIES)
    return movies


def _read_ratings(raw: bytes, known_movies: set[int]) -> pd.DataFrame:
    header = ",".join(RATINGS_HEADER).encode()
    clean = read_clean(raw, sep=b",", scale=ADAPTER.scale, header=header, known_movies=known_movies, positive_ids=True)
    if clean is not None:
        return clean
    return _parse_ratings(decode_utf8(raw, RATINGS), known_movies)


def _parse_ratings(content: str, known_movies: set[int]) -> pd.DataFrame:
    rows = []
    for lineno, (uid, mid, rating, ts) in csv_rows(content, RATINGS, RATINGS_HEADER):
        user_id = parse_positive(uid, "user id", RATINGS, lineno)
        movie_id = parse_positive(mid, "movie id", RATINGS, lineno)
        value = parse_rating(rating, ADAPTER.scale, RATINGS, lineno)
        stamp = parse_int(ts, "timestamp", RATINGS, lineno)
        check_timestamp(stamp, RATINGS, lineno)
        if movie_id not in known_movies:
            raise DataError(f"unknown movie id {movie_id} (not in {MOVIES})", source=RATINGS, line=lineno)
        rows.append((user_id, movie_id, value, stamp))
    return ratings_frame(rows, RATINGS)
