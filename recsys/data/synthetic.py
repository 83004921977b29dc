"""Small archives in the exact layout of each adapter (MovieLens 100K, 1M, CSV; plain CSV), made up from scratch.

Tests need data they can break on purpose (a bad row, a missing member) without
shipping MovieLens files, whose licence forbids redistribution. The members come back
as a dict so a test can edit one before writing the zip.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from recsys.data.movielens_1m import GENRES as ML1M_GENRES

GENRES = ["unknown", *ML1M_GENRES]  # ML-100K's 19: ML-1M's and "unknown" first
OCCUPATIONS = ("administrator", "artist", "educator", "engineer", "other", "student", "writer")


def synthetic_members(n_users: int = 30, n_movies: int = 40, per_user: int = 15, seed: int = 0) -> dict[str, bytes]:
    """Members of a consistent archive: every check in ``read_archive`` passes on it."""
    rng = np.random.default_rng(seed)
    users = "".join(
        f"{u}|{rng.integers(12, 70)}|{'MF'[u % 2]}|{OCCUPATIONS[u % len(OCCUPATIONS)]}|{rng.integers(10000, 99999)}\n"
        for u in range(1, n_users + 1)
    )
    items = []
    for m in range(1, n_movies + 1):
        year = 1950 + m % 48
        flags = ["0"] * len(GENRES)
        for g in rng.choice(np.arange(1, len(GENRES)), size=2, replace=False):
            flags[g] = "1"
        items.append(f"{m}|Movie {m} ({year})|01-Jan-{year}||http://example.invalid/{m}|{'|'.join(flags)}\n")
    ratings = []
    for u in range(1, n_users + 1):
        for m in rng.choice(np.arange(1, n_movies + 1), size=per_user, replace=False):
            ratings.append((u, int(m), int(rng.integers(1, 6)), 874_000_000 + int(rng.integers(0, 10**7))))
    members = {
        "u.user": users,
        "u.item": "".join(items),
        "u.genre": "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n",
        "u.occupation": "".join(f"{o}\n" for o in OCCUPATIONS),
        "u.info": f"{n_users} users\n{n_movies} items\n{len(ratings)} ratings\n",
        "u.data": _lines(ratings),
    }
    members.update(_canonical_splits(ratings, rng))
    return {name: text.encode("latin-1") for name, text in members.items()}


def write_archive(path: Path, members: dict[str, bytes], folder: str = "ml-100k") -> Path:
    """The members in ``folder`` of a zip at ``path``; ``folder`` "" puts them at its top level."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(f"{folder}/{name}" if folder else name, content)
    return path


def fingerprint(members: dict[str, bytes]) -> str:
    return hashlib.sha256(members["u.data"]).hexdigest()


def _canonical_splits(ratings: list[tuple], rng: np.random.Generator) -> dict[str, str]:
    """u1..u5: five disjoint test folds; ua/ub: a few ratings per user held out."""
    order = rng.permutation(len(ratings))
    folds = np.array_split(order, 5)
    members = {}
    for k, fold in enumerate(folds, start=1):
        test = set(fold.tolist())
        members[f"u{k}.test"] = _lines([ratings[i] for i in sorted(test)])
        members[f"u{k}.base"] = _lines([r for i, r in enumerate(ratings) if i not in test])
    for name, offset in (("ua", 0), ("ub", 1)):
        test = {i for i, r in enumerate(ratings) if (i + offset) % 5 == 0}
        members[f"{name}.test"] = _lines([ratings[i] for i in sorted(test)])
        members[f"{name}.base"] = _lines([r for i, r in enumerate(ratings) if i not in test])
    return members


def _lines(rows: list[tuple]) -> str:
    return "".join("\t".join(map(str, row)) + "\n" for row in rows)


def synthetic_csv_members(n_users: int = 30, n_movies: int = 40, per_user: int = 15, seed: int = 0) -> dict[str, bytes]:
    """Members in the MovieLens CSV layout (ml-latest-small, 25M, 32M): half stars, no demographics.

    Sparse movie ids (as the real releases have), a quoted title with a comma, a movie with
    ``(no genres listed)`` and one without a year; every check of the CSV adapter passes.
    """
    movies, ratings = _csv_tables(n_users, n_movies, per_user, seed, no_genres="(no genres listed)")
    return {
        "movies.csv": ("movieId,title,genres\n" + movies).encode(),
        "ratings.csv": ("userId,movieId,rating,timestamp\n" + ratings).encode(),
    }


def synthetic_own_members(
    n_users: int = 30, n_movies: int = 40, per_user: int = 15, seed: int = 0, *, users: bool = True
) -> dict[str, bytes]:
    """Members in the plain-CSV layout (``own-csv``): half stars, with a ``users.csv`` when ``users``.

    The catalogue is the CSV one's (sparse ids, a quoted title with a comma, no year on one)
    with an empty genres field and an accented title (UTF-8). ``users.csv`` lists one more
    user than rate (a user may be known before rating anything); every check passes.
    """
    items, ratings = _csv_tables(n_users, n_movies, per_user, seed, no_genres="", accented=True)
    members = {
        "ratings.csv": ("user_id,item_id,rating,timestamp\n" + ratings).encode(),
        "items.csv": ("item_id,title,genres\n" + items).encode(),
    }
    if users:
        rng = np.random.default_rng(seed + 1)
        members["users.csv"] = (
            "user_id,age,gender,occupation,zip_code\n"
            + "".join(
                f"{u},{rng.integers(12, 80)},{'MF'[u % 2]},{OCCUPATIONS[u % len(OCCUPATIONS)]},{rng.integers(10000, 99999)}\n"
                for u in range(1, n_users + 2)
            )
        ).encode()
    return members


def _csv_tables(
    n_users: int, n_movies: int, per_user: int, seed: int, *, no_genres: str, accented: bool = False
) -> tuple[str, str]:
    """The CSV layouts' movie and rating rows (no headers): ``id,title,genres`` and ``user,movie,rating,seconds``."""
    rng = np.random.default_rng(seed)
    ids = [m * 7 for m in range(1, n_movies + 1)]
    movies = []
    for k, m in enumerate(ids):
        genres = no_genres if k == 1 else "|".join(rng.choice(GENRES[1:], size=2, replace=False))
        name = "Amélie" if accented and k == 3 else "Movie"
        title = (
            f'"Movie {m}, The ({1950 + m % 48})"'
            if k == 0
            else f"Movie {m}"
            if k == 2
            else f"{name} {m} ({1950 + m % 48})"
        )
        movies.append(f"{m},{title},{genres}\n")
    ratings = []
    for u in range(1, n_users + 1):
        for m in sorted(rng.choice(ids, size=per_user, replace=False)):
            ratings.append(f"{u},{m},{rng.integers(1, 11) / 2:.1f},{1_200_000_000 + int(rng.integers(0, 10**8))}\n")
    return "".join(movies), "".join(ratings)


def csv_fingerprint(members: dict[str, bytes]) -> str:
    """sha256(ratings.csv), the fingerprint of both CSV layouts (ml-csv, own-csv)."""
    return hashlib.sha256(members["ratings.csv"]).hexdigest()


def synthetic_1m_members(n_users: int = 30, n_movies: int = 40, per_user: int = 15, seed: int = 0) -> dict[str, bytes]:
    """Members in the MovieLens 1M layout (``::``-separated ``.dat``, latin-1); every check passes.

    Ages are the release's age groups, occupations its codes 0-20, one title is accented
    (latin-1 bytes, as in the release).
    """
    rng = np.random.default_rng(seed)
    ages = (1, 18, 25, 35, 45, 50, 56)
    users = "".join(
        f"{u}::{'MF'[u % 2]}::{ages[u % len(ages)]}::{u % 21}::{rng.integers(10000, 99999)}\n"
        for u in range(1, n_users + 1)
    )
    movies = []
    for m in range(1, n_movies + 1):
        name = "Misérables" if m == 3 else "Movie"
        genres = "|".join(rng.choice(ML1M_GENRES, size=2, replace=False))
        movies.append(f"{m}::{name} {m} ({1950 + m % 48})::{genres}\n")
    ratings = []
    for u in range(1, n_users + 1):
        for m in rng.choice(np.arange(1, n_movies + 1), size=per_user, replace=False):
            ratings.append(f"{u}::{int(m)}::{int(rng.integers(1, 6))}::{956_703_932 + int(rng.integers(0, 10**7))}\n")
    members = {"users.dat": users, "movies.dat": "".join(movies), "ratings.dat": "".join(ratings)}
    return {name: text.encode("latin-1") for name, text in members.items()}
