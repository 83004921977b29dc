"""The dataset seam: one adapter per archive layout, chosen by ``RECSYS_DATASET``.

Each adapter knows its official download address, its content fingerprint (when the
release has a fixed one), the members that make up its layout (so an archive is
recognised, and one of another layout is refused naming the right setting), its rating
scale, the side columns it has (the model's features follow them: docs/FEATURES.md), its
native splits and the parser that reads and validates it into a ``MovieLens``.

This module is cheap to import (the standard library only): ``recsys.config`` reads the
adapters' names and addresses at DAG parse time. The parsers (pandas) load when an archive
is read.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.errors import DataError

if TYPE_CHECKING:
    from recsys.data.movielens import MovieLens

AUTO = "auto"  # RECSYS_DATASET=auto: the layout the archive's members show


@dataclass(frozen=True)
class RatingScale:
    """The ratings a data set allows: ``low`` to ``high`` in steps of ``step``."""

    low: float
    high: float
    step: float

    @property
    def levels(self) -> int:
        return round((self.high - self.low) / self.step) + 1

    def level(self, rating: float) -> int:
        """0 .. levels-1; the history bags key (item, rating) pairs by it."""
        return round((rating - self.low) / self.step)

    def allows(self, rating: float) -> bool:
        return self.low <= rating <= self.high and abs(rating - self.low - self.level(rating) * self.step) < 1e-9

    def __str__(self) -> str:
        if self.step == 1:
            return f"{self.low:g}-{self.high:g}"
        return f"{self.low:g}-{self.high:g} in steps of {self.step:g}"


STARS = RatingScale(1.0, 5.0, 1.0)
HALF_STARS = RatingScale(0.5, 5.0, 0.5)


@dataclass(frozen=True)
class DatasetAdapter:
    name: str  # the RECSYS_DATASET value, recorded with each load (recsys.datasets.dataset)
    title: str  # for messages
    official_url: str  # "": none (your own data), so RECSYS_DATA_URL must name the archive
    fingerprint: str | None  # the official sha256 of ``fingerprint_member``; None: the release has none fixed
    fingerprint_member: str
    members: tuple[str, ...]  # bare names every archive of this layout holds (others are optional)
    scale: RatingScale
    # Side columns of recsys.users it can fill, besides user_id; a load returns those every
    # loaded user has (store.load_movielens), so own-csv has demographics only with a users.csv.
    user_columns: tuple[str, ...]
    movie_columns: tuple[str, ...]  # of recsys.movies, besides movie_id
    native_splits: tuple[str, ...]  # the archive's own train/test splits (random/temporal work for all)
    folds: tuple[str, ...]  # the native splits that are disjoint folds (`recsys evaluate --folds`)
    reader: str  # "module:function" taking (path, expected_sha256, max_member_bytes)
    # Largest uncompressed member read (unless RECSYS_MAX_MEMBER_BYTES says otherwise): room for the
    # release's largest, none for a zip bomb.
    max_member_bytes: int

    def matches(self, names: Iterable[str]) -> bool:
        return set(self.members) <= set(names)

    def read(self, path: Path, expected_sha256: str | None, max_member_bytes: int | None = None) -> MovieLens:
        """Parse and validate; ``expected_sha256`` None checks the official fingerprint, "" checks none;
        ``max_member_bytes`` None: the adapter's own cap (each reader falls back to it)."""
        module, _, function = self.reader.partition(":")
        expected = self.fingerprint if expected_sha256 is None else expected_sha256
        read = getattr(importlib.import_module(module), function)
        return read(path, expected or None, max_member_bytes=max_member_bytes)


_ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

ADAPTERS: dict[str, DatasetAdapter] = {
    a.name: a
    for a in (
        DatasetAdapter(
            name="ml-100k",
            title="MovieLens 100K",
            official_url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            # sha256 of u.data in the official release. The zip bytes vary between re-packed
            # copies, so the content is what gets fingerprinted.
            fingerprint="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            fingerprint_member="u.data",
            members=("u.data", "u.item", "u.user", "u.genre", "u.occupation", "u.info"),
            scale=STARS,
            user_columns=("age", "gender", "occupation", "zip_code"),
            movie_columns=("title", "release_date", "release_year", "imdb_url", "genres"),
            native_splits=_ML100K_SPLITS,
            folds=_ML100K_SPLITS[:5],
            reader="recsys.data.movielens:read_archive",
            max_member_bytes=32 * 2**20,  # 16x u.data's 1.9 MB
        ),
        DatasetAdapter(
            name="ml-1m",
            title="MovieLens 1M",
            official_url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
            # A fixed release, but its sha256(ratings.dat) could not be taken here (no download):
            # set RECSYS_DATA_SHA256 to pin it.
            fingerprint=None,
            fingerprint_member="ratings.dat",
            members=("ratings.dat", "users.dat", "movies.dat"),
            scale=STARS,
            user_columns=("age", "gender", "occupation", "zip_code"),  # age as the release's groups
            movie_columns=("title", "release_year", "genres"),
            native_splits=(),
            folds=(),
            reader="recsys.data.movielens_1m:read_archive",
            max_member_bytes=384 * 2**20,  # 16x ratings.dat's 24 MB
        ),
        DatasetAdapter(
            name="ml-csv",
            title="MovieLens CSV (ml-latest-small, 25M, 32M)",
            official_url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
            fingerprint=None,  # ml-latest-small is re-released as it grows: no fixed content
            fingerprint_member="ratings.csv",
            members=("ratings.csv", "movies.csv"),
            scale=HALF_STARS,
            user_columns=(),  # no demographics
            movie_columns=("title", "release_year", "genres"),
            native_splits=(),
            folds=(),
            reader="recsys.data.movielens_csv:read_archive",
            max_member_bytes=5 * 2**30 // 4,  # ml-32m's ratings.csv is about 0.9 GB
        ),
        DatasetAdapter(
            name="own-csv",
            title="plain CSV (own data)",
            official_url="",  # a user's own data has no official address: RECSYS_DATA_URL names it
            fingerprint=None,
            fingerprint_member="ratings.csv",
            members=("ratings.csv", "items.csv"),  # users.csv is optional; items.csv tells it from ml-csv
            scale=HALF_STARS,  # whole stars are half stars too
            user_columns=("age", "gender", "occupation", "zip_code"),  # from users.csv, when there is one
            movie_columns=("title", "release_year", "genres"),
            native_splits=(),
            folds=(),
            reader="recsys.data.own_csv:read_archive",
            max_member_bytes=5 * 2**30 // 4,  # as the MovieLens CSV releases'
        ),
    )
}
DATASETS = (*ADAPTERS, AUTO)  # what RECSYS_DATASET accepts
DEFAULT_DATASET = "ml-100k"
# Every native split name any adapter knows (split specs are parsed before the data set is known).
NATIVE_SPLITS = tuple(dict.fromkeys(s for a in ADAPTERS.values() for s in a.native_splits))


def adapter(name: str) -> DatasetAdapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r}; RECSYS_DATASET is one of {', '.join(DATASETS)}") from None


def recognise(names: Iterable[str]) -> list[DatasetAdapter]:
    """The adapters whose layout these bare member names hold."""
    names = set(names)
    return [a for a in ADAPTERS.values() if a.matches(names)]


def choose(path: Path, dataset: str) -> DatasetAdapter:
    """The adapter for the archive at ``path``: ``dataset``, checked against the members it has.

    An archive of another known layout is refused in one line naming the setting that
    reads it; one of no known layout is left to the chosen adapter, whose parser names the
    members it misses.
    """
    from recsys.data.archive import member_names, open_zip

    with open_zip(path) as zf:
        names = set(member_names(zf))
    found = recognise(names)
    if dataset == AUTO:
        if not found:
            layouts = "; ".join(f"{a.name}: {', '.join(a.members)}" for a in ADAPTERS.values())
            raise DataError(f"the archive is in no known layout (members of each: {layouts})", source=str(path))
        return found[0]
    chosen = adapter(dataset)
    if not chosen.matches(names) and found:
        other = found[0]
        raise DataError(
            f"the archive is in the {other.title} layout ({', '.join(other.members)}), not {chosen.title} "
            f"(RECSYS_DATASET={chosen.name}); set RECSYS_DATASET={other.name} (or auto)",
            source=str(path),
        )
    return chosen


def read_dataset(
    path: Path | str,
    dataset: str = DEFAULT_DATASET,
    expected_sha256: str | None = None,
    *,
    max_member_bytes: int | None = None,
) -> MovieLens:
    """Read and validate the archive with the adapter ``dataset`` names (or recognises: ``auto``)."""
    path = Path(path)
    return choose(path, dataset).read(path, expected_sha256, max_member_bytes)
