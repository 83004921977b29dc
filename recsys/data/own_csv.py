"""The plain-CSV adapter: a user's own ratings (``RECSYS_DATASET=own-csv``, issue #12).

A zip holding, at its top level or in one folder:

- ``ratings.csv``: ``user_id,item_id,rating,timestamp``; positive integer ids, a rating
  on the half-star scale 0.5-5.0 (whole stars are a part of it), seconds since 1970 UTC;
- ``items.csv``: ``item_id,title,genres``; genres ``|``-separated (may be empty), the
  year taken from a trailing ``(YYYY)`` in the title when there is one;
- ``users.csv`` (optional): ``user_id,age,gender,occupation,zip_code``; age 1-120, gender
  ``M`` or ``F``, occupation and zip code free text. With it, every rating's user must be
  in it and the model gets the demographic inputs; without it, the users are the ids that
  rate and there are no user side features (as ml-csv).

UTF-8 (a byte-order mark, as spreadsheets write, is allowed); each header exactly as
above; fields with a comma quoted. There is no official address and no fixed fingerprint.
Every check names the member and line, as the other adapters do.
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

ADAPTER = ADAPTERS["own-csv"]
RATINGS, ITEMS, USERS = "ratings.csv", "items.csv", "users.csv"
RATINGS_HEADER = ("user_id", "item_id", "rating", "timestamp")
ITEMS_HEADER = ("item_id", "title", "genres")
USERS_HEADER = ("user_id", "age", "gender", "occupation", "zip_code")
MAX_AGE = 120  # recsys.users' check (sql/0001): refused here naming the line, not by the load
_BOM = "\ufeff"


def read_archive(path: Path | str, expected_sha256: str | None, *, max_member_bytes: int | None = None) -> MovieLens:
    """Read, fingerprint and validate a plain-CSV archive, or raise ``DataError``."""
    path = Path(path)
    with open_zip(path) as zf:
        archive = open_layout(zf, path, ADAPTER, max_member_bytes or ADAPTER.max_member_bytes)
        raw_ratings = archive.read_fingerprinted(RATINGS, expected_sha256)
        items = _parse_items(_decode(archive.read(ITEMS), ITEMS))
        users = _parse_users(_decode(archive.read(USERS), USERS)) if USERS in archive.names else None
    ratings = _read_ratings(raw_ratings, set(items["movie_id"]), None if users is None else set(users["user_id"]))
    if users is None:  # no demographics: the users are the ids that rate
        users = pd.DataFrame({"user_id": pd.unique(ratings["user_id"])}).sort_values("user_id", ignore_index=True)
    return MovieLens(
        users=users,
        movies=items,
        ratings=ratings,
        split_tests=pd.DataFrame(columns=["split", "user_id", "movie_id"]),
        genres=sorted({g for gs in items["genres"] for g in gs}),
        occupations=sorted(set(users["occupation"])) if "occupation" in users else [],
        fingerprint=archive.member_sha256[RATINGS],
        member_sha256=dict(sorted(archive.member_sha256.items())),
        dataset=ADAPTER.name,
        scale=ADAPTER.scale,
    )


def _decode(raw: bytes, member: str) -> str:
    return decode_utf8(raw, member, dataset=ADAPTER.name).removeprefix(_BOM)


def _parse_items(content: str) -> pd.DataFrame:
    rows, lines = [], []
    for lineno, (iid, raw_title, genres) in csv_rows(content, ITEMS, ITEMS_HEADER):
        item_id = parse_positive(iid, "item id", ITEMS, lineno)
        title = " ".join(raw_title.split())
        if not title:
            raise DataError("the title is empty", source=ITEMS, line=lineno)
        names = [g.strip() for g in genres.split("|") if g.strip()]
        rows.append((item_id, title, None, title_year(title), None, names))
        lines.append(lineno)
    if not rows:
        raise DataError("no items", source=ITEMS)
    items = pd.DataFrame(rows, columns=["movie_id", "title", "release_date", "release_year", "imdb_url", "genres"])
    items["release_year"] = items["release_year"].astype("Int64")
    require_unique(items, "movie_id", ITEMS, lines=lines, label="item id")
    return items


def _parse_users(content: str) -> pd.DataFrame:
    rows, lines = [], []
    for lineno, (uid, age, gender, occupation, zip_code) in csv_rows(content, USERS, USERS_HEADER):
        user_id = parse_positive(uid, "user id", USERS, lineno)
        age_v = parse_int(age, "age", USERS, lineno)
        if not 1 <= age_v <= MAX_AGE:
            raise DataError(f"age {age_v} is not between 1 and {MAX_AGE}", source=USERS, line=lineno)
        if gender.strip() not in ("M", "F"):
            raise DataError(f"gender {gender!r} is not M or F", source=USERS, line=lineno)
        rows.append((user_id, age_v, gender.strip(), occupation.strip(), zip_code.strip()))
        lines.append(lineno)
    if not rows:
        raise DataError("no users (leave users.csv out of the archive if there are no demographics)", source=USERS)
    users = pd.DataFrame(rows, columns=["user_id", "age", "gender", "occupation", "zip_code"])
    require_unique(users, "user_id", USERS, lines=lines, label="user id")
    return users


def _read_ratings(raw: bytes, known_items: set[int], known_users: set[int] | None) -> pd.DataFrame:
    clean = read_clean(
        raw.removeprefix(_BOM.encode()),
        sep=b",",
        scale=ADAPTER.scale,
        header=",".join(RATINGS_HEADER).encode(),
        known_users=known_users,
        known_movies=known_items,
        positive_ids=True,
    )
    if clean is not None:
        return clean
    return _parse_ratings(_decode(raw, RATINGS), known_items, known_users)


def _parse_ratings(content: str, known_items: set[int], known_users: set[int] | None) -> pd.DataFrame:
    rows, lines = [], []
    for lineno, (uid, iid, rating, ts) in csv_rows(content, RATINGS, RATINGS_HEADER):
        user_id = parse_positive(uid, "user id", RATINGS, lineno)
        item_id = parse_positive(iid, "item id", RATINGS, lineno)
        value = parse_rating(rating, ADAPTER.scale, RATINGS, lineno)
        stamp = parse_int(ts, "timestamp", RATINGS, lineno)
        check_timestamp(stamp, RATINGS, lineno)
        if item_id not in known_items:
            raise DataError(f"unknown item id {item_id} (not in {ITEMS})", source=RATINGS, line=lineno)
        if known_users is not None and user_id not in known_users:
            raise DataError(f"unknown user id {user_id} (not in {USERS})", source=RATINGS, line=lineno)
        rows.append((user_id, item_id, value, stamp))
        lines.append(lineno)
    return ratings_frame(rows, RATINGS, lines=lines, item="item")
