"""The ML-100K adapter: parse and validate the MovieLens 100K archive into clean DataFrames.

Also home of ``MovieLens``, the frames every adapter produces (``recsys.data.adapters``).
Every check names the member file and line, because a user who brings a damaged or
edited archive needs to know exactly what to fix. The zip is read safely by
``recsys.data.archive`` (size cap, chunks, every member fingerprinted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from recsys.data.adapters import ADAPTERS, STARS, RatingScale
from recsys.data.archive import (
    LATIN1,
    Archive,
    check_timestamp,
    decode_latin1,
    fields,
    open_layout,
    open_zip,
    parse_int,
    parse_rating,
    ratings_frame,
    require_unique,
)
from recsys.data.clean_ratings import read_clean
from recsys.errors import DataError

ADAPTER = ADAPTERS["ml-100k"]
MEMBERS = ADAPTER.members
CANONICAL_SPLITS = ADAPTER.native_splits
ENCODING = LATIN1  # the raw files predate UTF-8 (e.g. accented French titles)
SPLIT_MEMBERS = tuple(f"{s}.{p}" for s in CANONICAL_SPLITS for p in ("base", "test"))
_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True)
class MovieLens:
    """The data set as tidy frames, keyed by ids (titles are not unique)."""

    users: pd.DataFrame  # user_id, age, gender, occupation, zip_code
    movies: pd.DataFrame  # movie_id, title, release_date, release_year, imdb_url, genres
    ratings: pd.DataFrame  # user_id, movie_id, rating, rated_at (UTC)
    split_tests: pd.DataFrame  # split, user_id, movie_id: the test part of each canonical split
    genres: list[str]
    occupations: list[str]
    fingerprint: str  # sha256 of the adapter's fingerprint member (ML-100K: u.data)
    member_sha256: dict[str, str] = field(default_factory=dict)  # sha256 of every member read, by bare name
    dataset: str = "ml-100k"  # the adapter that read it (recsys.data.adapters)
    scale: RatingScale = STARS  # the ratings it allows


def read_archive(path: Path | str, expected_sha256: str | None, *, max_member_bytes: int | None = None) -> MovieLens:
    """Read, fingerprint and validate the whole archive, or raise ``DataError``."""
    path = Path(path)
    with open_zip(path) as zf:
        archive = open_layout(zf, path, ADAPTER, max_member_bytes or ADAPTER.max_member_bytes, also=SPLIT_MEMBERS)
        raw_data = archive.read_fingerprinted("u.data", expected_sha256)
        fingerprint = archive.member_sha256["u.data"]
        text = {m: archive.text(m) for m in MEMBERS if m != "u.data"}
        genres = _parse_genres(text["u.genre"])
        occupations = [ln.strip() for ln in text["u.occupation"].splitlines() if ln.strip()]
        users = _parse_users(text["u.user"], set(occupations))
        movies = _parse_movies(text["u.item"], genres)
        ratings = _read_ratings(raw_data, users, movies)
        _check_counts(text["u.info"], users, movies, ratings)
        split_tests = _read_split_tests(archive, ratings)
    return MovieLens(
        users,
        movies,
        ratings,
        split_tests,
        genres,
        occupations,
        fingerprint,
        dict(sorted(archive.member_sha256.items())),
    )


def read_ratings_file(path: Path | str, scale: RatingScale = STARS) -> pd.DataFrame:
    """Read a user-supplied ratings file in ``u.data`` format (user item rating timestamp), ratings on ``scale``."""
    path = Path(path)
    try:
        content = path.read_text(encoding=ENCODING)
    except OSError as exc:
        raise DataError(f"cannot read ratings file: {exc.strerror}", source=str(path)) from exc
    return _parse_ratings(content, str(path), users=None, movies=None, scale=scale)


def title_year(title: str) -> int | None:
    """The year in a title's trailing "(YYYY)", if any."""
    match = _TITLE_YEAR.search(title)
    return int(match.group(1)) if match else None


_fields, _int = fields, parse_int


def _parse_genres(content: str) -> list[str]:
    pairs = [
        (_int(idx, "genre index", "u.genre", lineno), name)
        for lineno, (name, idx) in _fields(content, "u.genre", "|", 2)
    ]
    return [name for _, name in sorted(pairs)]


def _parse_users(content: str, occupations: set[str]) -> pd.DataFrame:
    rows = []
    for lineno, (uid, age, gender, occupation, zip_code) in _fields(content, "u.user", "|", 5):
        user_id = _int(uid, "user id", "u.user", lineno)
        age_v = _int(age, "age", "u.user", lineno)
        if gender not in ("M", "F"):
            raise DataError(f"gender {gender!r} is not M or F", source="u.user", line=lineno)
        if occupation not in occupations:
            raise DataError(f"unknown occupation {occupation!r}", source="u.user", line=lineno)
        rows.append((user_id, age_v, gender, occupation, zip_code.strip()))
    users = pd.DataFrame(rows, columns=["user_id", "age", "gender", "occupation", "zip_code"])
    require_unique(users, "user_id", "u.user")
    return users


def _parse_movies(content: str, genres: list[str]) -> pd.DataFrame:
    rows = []
    for lineno, parts in _fields(content, "u.item", "|", 5 + len(genres)):
        movie_id = _int(parts[0], "movie id", "u.item", lineno)
        title = " ".join(parts[1].split())  # a few titles carry stray whitespace
        release_date = _parse_date(parts[2], lineno)
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataError("genre flags must be 0 or 1", source="u.item", line=lineno)
        movie_genres = [g for g, f in zip(genres, flags, strict=True) if f == "1"]
        year = release_date.year if release_date else title_year(title)
        rows.append((movie_id, title, release_date, year, parts[4] or None, movie_genres))
    movies = pd.DataFrame(rows, columns=["movie_id", "title", "release_date", "release_year", "imdb_url", "genres"])
    movies["release_year"] = movies["release_year"].astype("Int64")
    require_unique(movies, "movie_id", "u.item")
    return movies


def _parse_date(value: str, lineno: int) -> date | None:
    if not value:
        return None  # e.g. movie 267, titled "unknown"
    try:
        return datetime.strptime(value, "%d-%b-%Y").date()
    except ValueError:
        raise DataError(f"release date {value!r} is not DD-Mon-YYYY", source="u.item", line=lineno) from None


def _read_ratings(raw: bytes, users: pd.DataFrame, movies: pd.DataFrame) -> pd.DataFrame:
    clean = read_clean(raw, sep=b"\t", scale=STARS, known_users=users["user_id"], known_movies=movies["movie_id"])
    if clean is not None:
        return clean
    return _parse_ratings(decode_latin1(raw, "u.data"), "u.data", users, movies)


def _parse_ratings(
    content: str, source: str, users: pd.DataFrame | None, movies: pd.DataFrame | None, scale: RatingScale = STARS
) -> pd.DataFrame:
    rows = []
    known_users = set(users["user_id"]) if users is not None else None
    known_movies = set(movies["movie_id"]) if movies is not None else None
    for lineno, (uid, mid, rating, ts) in _fields(content, source, "\t", 4):
        user_id = _int(uid, "user id", source, lineno)
        movie_id = _int(mid, "movie id", source, lineno)
        value = _rating(rating, scale, source, lineno)
        stamp = _int(ts, "timestamp", source, lineno)
        check_timestamp(stamp, source, lineno)
        if known_users is not None and user_id not in known_users:
            raise DataError(f"unknown user id {user_id} (not in u.user)", source=source, line=lineno)
        if known_movies is not None and movie_id not in known_movies:
            raise DataError(f"unknown movie id {movie_id} (not in u.item)", source=source, line=lineno)
        rows.append((user_id, movie_id, value, stamp))
    return ratings_frame(rows, source)


def _rating(value: str, scale: RatingScale, source: str, lineno: int) -> float:
    """Whole stars parse as the integers u.data holds; a half-star scale (a files: split of a CSV data set) as floats."""
    if scale.step != 1:
        return parse_rating(value, scale, source, lineno)
    rating = _int(value, "rating", source, lineno)
    if not scale.allows(rating):
        raise DataError(f"rating {value} is outside {scale}", source=source, line=lineno)
    return rating


def _check_counts(info: str, users: pd.DataFrame, movies: pd.DataFrame, ratings: pd.DataFrame) -> None:
    """u.info states the sizes; a truncated member shows up here even when it parses."""
    stated = {}
    for lineno, line in enumerate(info.splitlines(), start=1):
        if line.strip():
            number, _, what = line.strip().partition(" ")
            stated[what] = _int(number, "count", "u.info", lineno)
    actual = {"users": len(users), "items": len(movies), "ratings": len(ratings)}
    for what, count in actual.items():
        if stated.get(what) != count:
            raise DataError(f"u.info states {stated.get(what)} {what}, the files hold {count}", source="u.info")


def _read_split_tests(archive: Archive, ratings: pd.DataFrame) -> pd.DataFrame:
    """Keep only each canonical split's test part: its base part is all other ratings.

    Checked rather than assumed: base + test must cover u.data exactly.
    """
    all_pairs = pd.MultiIndex.from_frame(ratings[["user_id", "movie_id"]])
    frames = []
    for split in CANONICAL_SPLITS:
        test = _parse_ratings(archive.text(f"{split}.test"), f"{split}.test", None, None)
        base_lines = sum(1 for ln in archive.read(f"{split}.base").splitlines() if ln.strip())
        if (
            base_lines + len(test) != len(ratings)
            or not pd.MultiIndex.from_frame(test[["user_id", "movie_id"]]).isin(all_pairs).all()
        ):
            raise DataError(
                f"{split}.base ({base_lines}) + {split}.test ({len(test)}) do not partition u.data "
                f"({len(ratings)} ratings)",
                source=str(archive.path),
            )
        frames.append(test[["user_id", "movie_id"]].assign(split=split))
    return pd.concat(frames, ignore_index=True)[["split", "user_id", "movie_id"]]
