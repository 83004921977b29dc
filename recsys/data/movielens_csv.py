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

import csv
from pathlib import Path

import pandas as pd

from recsys.data.adapters import ADAPTERS
from recsys.data.archive import (
    check_timestamp,
    decode_utf8,
    finish_ratings,
    open_layout,
    open_zip,
    parse_int,
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


def _rows(content: str, member: str, header: tuple[str, ...]):
    """(line number, fields) of each data row, after checking the header names exactly ``header``."""
    reader = csv.reader(content.splitlines())
    first = next(reader, None)
    if first is None:
        raise DataError("is empty", source=member)
    if tuple(c.strip() for c in first) != header:
        raise DataError(
            f"header is {','.join(first)!r}, expected {','.join(header)!r} (a missing, extra or renamed column)",
            source=member,
            line=1,
        )
    for fields in reader:
        if not fields or fields == [""]:
            continue
        if len(fields) != len(header):
            raise DataError(
                f"expected {len(header)} comma-separated fields, got {len(fields)}", source=member, line=reader.line_num
            )
        yield reader.line_num, fields


def _positive(value: str, what: str, member: str, lineno: int) -> int:
    number = parse_int(value, what, member, lineno)
    if number <= 0:
        raise DataError(f"{what} {number} is not positive", source=member, line=lineno)
    return number


def _parse_movies(content: str) -> pd.DataFrame:
    rows = []
    for lineno, (mid, raw_title, genres) in _rows(content, MOVIES, MOVIES_HEADER):
        movie_id = _positive(mid, "movie id", MOVIES, lineno)
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
        return finish_ratings(clean, RATINGS)
    return _parse_ratings(decode_utf8(raw, RATINGS), known_movies)


def _parse_ratings(content: str, known_movies: set[int]) -> pd.DataFrame:
    scale = ADAPTER.scale
    rows = []
    for lineno, (uid, mid, rating, ts) in _rows(content, RATINGS, RATINGS_HEADER):
        user_id = _positive(uid, "user id", RATINGS, lineno)
        movie_id = _positive(mid, "movie id", RATINGS, lineno)
        try:
            value = float(rating)
        except ValueError:
            raise DataError(f"rating {rating!r} is not a number", source=RATINGS, line=lineno) from None
        if not scale.allows(value):
            raise DataError(f"rating {rating} is outside {scale}", source=RATINGS, line=lineno)
        stamp = parse_int(ts, "timestamp", RATINGS, lineno)
        check_timestamp(stamp, RATINGS, lineno)
        if movie_id not in known_movies:
            raise DataError(f"unknown movie id {movie_id} (not in {MOVIES})", source=RATINGS, line=lineno)
        rows.append((user_id, movie_id, value, stamp))
    if not rows:
        raise DataError("no ratings", source=RATINGS)
    return finish_ratings(pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"]), RATINGS)
