"""The ML-1M adapter: MovieLens 1M (``RECSYS_DATASET=ml-1m``).

``ml-1m/ratings.dat`` (``UserID::MovieID::Rating::Timestamp``, whole stars 1-5),
``users.dat`` (``UserID::Gender::Age::Occupation::Zip-code``: the age is already one of
the buckets 1, 18, 25, 35, 45, 50, 56 and the occupation a code 0-20, named here as the
release's README names it) and ``movies.dat`` (``MovieID::Title::Genres``, genres
``|``-separated, the year in the title), latin-1. Every check names the member and line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.data.adapters import ADAPTERS
from recsys.data.archive import (
    check_timestamp,
    decode_latin1,
    fields,
    open_layout,
    open_zip,
    parse_int,
    ratings_frame,
    require_unique,
)
from recsys.data.clean_ratings import read_clean
from recsys.data.movielens import MovieLens, title_year
from recsys.errors import DataError

ADAPTER = ADAPTERS["ml-1m"]
RATINGS, USERS, MOVIES = "ratings.dat", "users.dat", "movies.dat"
SEP = "::"
AGES = (1, 18, 25, 35, 45, 50, 56)  # "1: Under 18", "18: 18-24", ... "56: 56+"
OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def read_archive(path: Path | str, expected_sha256: str | None, *, max_member_bytes: int | None = None) -> MovieLens:
    """Read, fingerprint and validate a MovieLens 1M archive, or raise ``DataError``."""
    path = Path(path)
    with open_zip(path) as zf:
        archive = open_layout(zf, path, ADAPTER, max_member_bytes or ADAPTER.max_member_bytes)
        raw = archive.read_fingerprinted(RATINGS, expected_sha256)
        fingerprint = archive.member_sha256[RATINGS]
        users = _parse_users(archive.text(USERS))
        movies = _parse_movies(archive.text(MOVIES))
    ratings = _read_ratings(raw, set(users["user_id"]), set(movies["movie_id"]))
    return MovieLens(
        users=users,
        movies=movies,
        ratings=ratings,
        split_tests=pd.DataFrame(columns=["split", "user_id", "movie_id"]),
        genres=list(GENRES),
        occupations=list(OCCUPATIONS),
        fingerprint=fingerprint,
        member_sha256=dict(sorted(archive.member_sha256.items())),
        dataset=ADAPTER.name,
        scale=ADAPTER.scale,
    )


def _parse_users(content: str) -> pd.DataFrame:
    rows = []
    for lineno, (uid, gender, age, occupation, zip_code) in fields(content, USERS, SEP, 5):
        user_id = parse_int(uid, "user id", USERS, lineno)
        if gender not in ("M", "F"):
            raise DataError(f"gender {gender!r} is not M or F", source=USERS, line=lineno)
        age_v = parse_int(age, "age", USERS, lineno)
        if age_v not in AGES:
            raise DataError(f"age {age_v} is not one of the release's age groups {AGES}", source=USERS, line=lineno)
        code = parse_int(occupation, "occupation", USERS, lineno)
        if not 0 <= code < len(OCCUPATIONS):
            raise DataError(f"occupation code {code} is outside 0-{len(OCCUPATIONS) - 1}", source=USERS, line=lineno)
        rows.append((user_id, age_v, gender, OCCUPATIONS[code], zip_code.strip()))
    users = pd.DataFrame(rows, columns=["user_id", "age", "gender", "occupation", "zip_code"])
    require_unique(users, "user_id", USERS)
    return users


def _parse_movies(content: str) -> pd.DataFrame:
    rows = []
    known = set(GENRES)
    for lineno, (mid, raw_title, genres) in fields(content, MOVIES, SEP, 3):
        movie_id = parse_int(mid, "movie id", MOVIES, lineno)
        title = " ".join(raw_title.split())
        names = [g for g in genres.strip().split("|") if g]
        if unknown := [g for g in names if g not in known]:
            raise DataError(f"unknown genre {unknown[0]!r}", source=MOVIES, line=lineno)
        rows.append((movie_id, title, None, title_year(title), None, names))
    movies = pd.DataFrame(rows, columns=["movie_id", "title", "release_date", "release_year", "imdb_url", "genres"])
    movies["release_year"] = movies["release_year"].astype("Int64")
    require_unique(movies, "movie_id", MOVIES)
    return movies


def _read_ratings(raw: bytes, known_users: set[int], known_movies: set[int]) -> pd.DataFrame:
    clean = read_clean(raw, sep=SEP.encode(), scale=ADAPTER.scale, known_users=known_users, known_movies=known_movies)
    if clean is not None:
        return clean
    return _parse_ratings(decode_latin1(raw, RATINGS, ADAPTER.title), known_users, known_movies)


def _parse_ratings(content: str, known_users: set[int], known_movies: set[int]) -> pd.DataFrame:
    rows = []
    for lineno, (uid, mid, rating, ts) in fields(content, RATINGS, SEP, 4):
        user_id = parse_int(uid, "user id", RATINGS, lineno)
        movie_id = parse_int(mid, "movie id", RATINGS, lineno)
        value = parse_int(rating, "rating", RATINGS, lineno)
        if not ADAPTER.scale.allows(value):
            raise DataError(f"rating {value} is outside {ADAPTER.scale}", source=RATINGS, line=lineno)
        stamp = parse_int(ts, "timestamp", RATINGS, lineno)
        check_timestamp(stamp, RATINGS, lineno)
        if user_id not in known_users:
            raise DataError(f"unknown user id {user_id} (not in {USERS})", source=RATINGS, line=lineno)
        if movie_id not in known_movies:
            raise DataError(f"unknown movie id {movie_id} (not in {MOVIES})", source=RATINGS, line=lineno)
        rows.append((user_id, movie_id, value, stamp))
    return ratings_frame(rows, RATINGS)
