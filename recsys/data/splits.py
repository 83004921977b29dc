"""Train/test splits of the ratings: a data set's own (ML-100K: u1-u5, ua, ub), random, temporal, or files.

A split is named by a short spec so that the CLI, the registry and the DAGs can record
exactly which data a model saw: ``u1`` .. ``u5``, ``ua``, ``ub``, ``random:0.2:42``
(test fraction, seed), ``temporal:0.2`` (the latest 20% of ratings by time), or
``files:TRAIN,TEST`` for user-supplied files in ``u.data`` format. Two cold-start
protocols hold out whole movies or users of a base split's training part:
``cold_movies:u1:50:42`` (50 movies, seed 42: every rating of theirs is the test part,
none is in training) and ``cold_users:u1:50:42``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.adapters import NATIVE_SPLITS as CANONICAL_SPLITS
from recsys.data.adapters import STARS, RatingScale
from recsys.data.movielens import read_ratings_file
from recsys.errors import ConfigError, DataError


@dataclass(frozen=True)
class Split:
    name: str
    train: pd.DataFrame  # user_id, movie_id, rating, rated_at
    test: pd.DataFrame


def make_split(
    spec: str, ratings: pd.DataFrame, split_tests: pd.DataFrame | None = None, scale: RatingScale = STARS
) -> Split:
    """Build the split that ``spec`` names from the feature store's ratings (on ``scale``, for ``files:``)."""
    kind, _, args = spec.partition(":")
    if kind in CANONICAL_SPLITS and not args:
        if split_tests is None:
            raise ConfigError(f"split {spec!r} needs the canonical split table")
        return canonical_split(spec, ratings, split_tests)
    if kind == "random":
        fraction, seed = _parse_args(spec, args, 2, (0.2, 42))
        return random_split(ratings, float(fraction), int(seed))
    if kind == "temporal":
        (fraction,) = _parse_args(spec, args, 1, (0.2,))
        return temporal_split(ratings, float(fraction))
    if kind in COLD_KINDS:
        base, count, seed = _cold_args(spec, args)
        return cold_split(make_split(base, ratings, split_tests, scale), kind, count, seed)
    if kind == "files":
        train_path, sep, test_path = args.partition(",")
        if not sep or not train_path or not test_path:
            raise ConfigError("split 'files:TRAIN,TEST' needs two comma-separated paths")
        return files_split(Path(train_path), Path(test_path), ratings, scale)
    raise ConfigError(
        f"unknown split {spec!r}; use one of {', '.join(CANONICAL_SPLITS)}, "
        "random[:FRACTION[:SEED]], temporal[:FRACTION], cold_movies:BASE[:COUNT:SEED], "
        "cold_users:BASE[:COUNT:SEED] or files:TRAIN,TEST"
    )


COLD_KINDS = {"cold_movies": "movie_id", "cold_users": "user_id"}


def cold_split(base: Split, kind: str, count: int, seed: int) -> Split:
    """``count`` movies (or users) of ``base``'s training part held out entirely: their ratings are the test part."""
    column = COLD_KINDS[kind]
    ids = np.sort(base.train[column].unique())
    if count >= len(ids):
        raise ConfigError(f"{kind}: cannot hold out {count} of {len(ids)} {column} values")
    held = np.random.default_rng(seed).choice(ids, count, replace=False)
    is_test = base.train[column].isin(held).to_numpy()
    return Split(f"{kind}:{base.name}:{count}:{seed}", _clean(base.train[~is_test]), _clean(base.train[is_test]))


def _cold_args(spec: str, args: str) -> tuple[str, int, int]:
    """``BASE:COUNT:SEED`` (BASE may itself hold colons, e.g. temporal:0.1), or just ``BASE`` for 50 and 42."""
    parts = args.rsplit(":", 2)
    if len(parts) == 3 and parts[1].lstrip("-").isdigit() and parts[2].lstrip("-").isdigit():
        base, count, seed = parts[0], int(parts[1]), int(parts[2])
    else:
        base, count, seed = args, 50, 42
    if not base or base.startswith(tuple(COLD_KINDS)):
        raise ConfigError(f"split {spec!r}: use cold_movies:BASE[:COUNT:SEED], e.g. cold_movies:u1:50:42")
    if count < 1 or seed < 0:
        raise ConfigError(f"split {spec!r}: count must be at least 1 and seed at least 0")
    return base, count, seed


def canonical_split(name: str, ratings: pd.DataFrame, split_tests: pd.DataFrame) -> Split:
    test_keys = split_tests.loc[split_tests["split"] == name, ["user_id", "movie_id"]]
    if test_keys.empty:
        raise DataError(
            f"no test ratings recorded for canonical split {name!r}: run ingest first, or the loaded data set has "
            "no such split of its own (only ML-100K has u1-u5, ua, ub); use random:F:SEED or temporal:F"
        )
    marked = ratings.merge(test_keys.assign(_test=True), on=["user_id", "movie_id"], how="left")
    is_test = marked.pop("_test").fillna(False).astype(bool)
    return Split(name, _clean(marked[~is_test]), _clean(marked[is_test]))


def random_split(ratings: pd.DataFrame, fraction: float, seed: int) -> Split:
    _check_fraction(fraction)
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(ratings)) < fraction
    return Split(f"random:{fraction}:{seed}", _clean(ratings[~is_test]), _clean(ratings[is_test]))


def temporal_split(ratings: pd.DataFrame, fraction: float) -> Split:
    """Train on the past, test on the future: the way a deployed model is actually used."""
    _check_fraction(fraction)
    ordered = ratings.sort_values(["rated_at", "user_id", "movie_id"], kind="stable")
    cut = int(round(len(ordered) * (1 - fraction)))
    return Split(f"temporal:{fraction}", _clean(ordered.iloc[:cut]), _clean(ordered.iloc[cut:]))


def files_split(
    train_path: Path, test_path: Path, known: pd.DataFrame | None = None, scale: RatingScale = STARS
) -> Split:
    """A user's own split in ``u.data`` format; its ids must exist in the feature store (side features come from there)."""
    train, test = read_ratings_file(train_path, scale), read_ratings_file(test_path, scale)
    if known is not None:
        for path, part in ((train_path, train), (test_path, test)):
            _require_known_ids(path, part, known)
    _refuse_overlap(train_path, train, test)
    return Split(f"files:{train_path},{test_path}", _clean(train), _clean(test))


def _refuse_overlap(train_path: Path, train: pd.DataFrame, test: pd.DataFrame) -> None:
    """A pair in both parts would be trained on (and sit in the history bags) and then tested."""
    shared = train[["user_id", "movie_id"]].merge(test[["user_id", "movie_id"]].drop_duplicates())
    if len(shared):
        first = shared.iloc[0]
        raise DataError(
            f"{len(shared)} (user, movie) pair(s) are in both the training and the test file, e.g. "
            f"user {first['user_id']}, movie {first['movie_id']}; a test rating must not be trained on",
            source=str(train_path),
        )


def _require_known_ids(path: Path, part: pd.DataFrame, known: pd.DataFrame) -> None:
    for column in ("user_id", "movie_id"):
        unknown = sorted(set(part[column]) - set(known[column]))
        if unknown:
            raise DataError(
                f"{len(unknown)} {column} value(s) not in the feature store, e.g. {unknown[:5]}",
                source=str(path),
            )


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["user_id", "movie_id", "rating", "rated_at"]].reset_index(drop=True)


def _parse_args(spec: str, args: str, count: int, defaults: tuple) -> tuple:
    values = args.split(":") if args else []
    if len(values) > count:
        raise ConfigError(f"split {spec!r} takes at most {count} argument(s)")
    try:
        parsed = [float(v) if i == 0 else int(v) for i, v in enumerate(values)]
    except ValueError:
        raise ConfigError(f"split {spec!r} has a non-numeric argument") from None
    return tuple(parsed) + defaults[len(parsed) :]


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise ConfigError(f"test fraction must be between 0 and 1, got {fraction}")
