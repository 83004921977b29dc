"""Closest movie titles for a title that matches none: the suggestions of the API and the rerank DAG.

A rerank title resolves only by a case-insensitive exact match (``rerank`` in sql/queries/lookup.sql);
anything else is *unknown*. For each unknown title the caller gets up to ``SUGGESTIONS``
movies, in this order:

1. titles that contain it case-insensitively, prefixes first, then other substrings (the
   order ``GET /movies?title=`` lists them in), so ``"toy story"`` suggests
   ``Toy Story (1995)`` and ``"Heat"`` suggests ``Heat (1995)`` first;
2. then the closest titles by rapidfuzz's ``WRatio`` on lower-cased alphanumerics, with
   and without the trailing ``(year)``, at least ``MIN_SCORE``, so ``"Toy Stroy (1995)"``
   suggests ``Toy Story (1995)``.

Ties go to the closer spelling (``fuzz.ratio``), then the shorter title, then the lower
movie id, so an answer is deterministic. PostgreSQL's pg_trgm would do this in SQL, but the
project-managed PostgreSQL ships no contrib extensions.

The titles are loaded once per ingested data set (``recsys.datasets``) and kept in
``TitleCache``, so a suggestion neither reads nor indexes them again (measured: docs/API.md,
"Design notes").
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

from recsys.db.sql import queries

SUGGESTIONS = 3
MIN_SCORE = 70.0  # token_sort_ratio 0-100; below it the "closest" title is noise
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
# The data set the titles belong to, and the titles (sql/queries/lookup.sql): statement text
# for a psycopg connection, sync or async, or the API's pool.
DATASET_SQL = queries("lookup").latest_dataset.sql
TITLES_SQL = queries("lookup").titles.sql


@dataclass(frozen=True)
class Suggestion:
    movie_id: int
    title: str


@dataclass(frozen=True)
class TitleSuggestions:
    title: str  # the unknown title, as requested
    matches: list[Suggestion]


class TitleIndex:
    """The movie titles of one data set, prepared for ``suggestions``."""

    def __init__(self, movies: Iterable[tuple[int, str]]):
        pairs = sorted((int(m), str(t)) for m, t in movies)
        self.movie_ids = [m for m, _ in pairs]
        self.titles = [t for _, t in pairs]
        self._full = [default_process(t) for t in self.titles]
        self._bare = [default_process(_YEAR.sub("", t)) for t in self.titles]  # "toy story" for "Toy Story (1995)"
        # Every lower-cased title in one string, one per line: str.find runs in C, a loop over 1,682 would not.
        lowered = [t.lower().replace("\n", " ") for t in self.titles]
        self._haystack = "\n".join(lowered)
        self._starts = list(accumulate((len(t) + 1 for t in lowered[:-1]), initial=0))

    def __len__(self) -> int:
        return len(self.titles)

    def suggest(self, query: str, limit: int = SUGGESTIONS) -> list[Suggestion]:
        """Up to ``limit`` closest titles for ``query`` (see the module docstring for the order)."""
        return self.suggestions([query], limit)[0].matches

    def suggestions(self, unknown_titles: Sequence[str], limit: int = SUGGESTIONS) -> list[TitleSuggestions]:
        """One entry per unknown title, in their order (``matches`` may be empty).

        The fuzzy scores of all the titles come from one ``cdist`` call (in C), not a Python
        loop per pair (measured: docs/API.md, "Design notes").
        """
        wanted = [default_process(t) for t in unknown_titles]
        scores = None
        if unknown_titles and self.titles:
            options = {"scorer": fuzz.token_sort_ratio, "processor": None, "dtype": "uint8"}
            scores = process.cdist(wanted, self._full, score_cutoff=MIN_SCORE, **options)
            scores = scores.__array__()  # numpy, imported by rapidfuzz's cdist itself
            scores = scores.clip(process.cdist(wanted, self._bare, score_cutoff=MIN_SCORE, **options), None)
        out = []
        for row, (title, query) in enumerate(zip(unknown_titles, wanted, strict=True)):
            lower = title.strip().lower()
            if scores is None or not lower or not query:
                out.append(TitleSuggestions(title, []))
                continue
            score = scores[row]
            keys: dict[int, tuple] = {}
            for i, at_start in self._containing(lower):
                keys[i] = (0 if at_start else 1, -int(score[i]), len(self.titles[i]), self.movie_ids[i])
            for i in score.argsort(kind="stable")[::-1][: limit + len(keys)]:
                if score[i] < MIN_SCORE:
                    break
                keys.setdefault(int(i), (2, -int(score[i]), len(self.titles[i]), self.movie_ids[i]))
            best = sorted(keys, key=keys.__getitem__)[:limit]
            out.append(TitleSuggestions(title, [Suggestion(self.movie_ids[i], self.titles[i]) for i in best]))
        return out

    def _containing(self, lower: str) -> Iterator[tuple[int, bool]]:
        """(title index, whether it starts with ``lower``) for each title containing ``lower``, each once."""
        if "\n" in lower:
            return
        at, last = self._haystack.find(lower), -1
        while at >= 0:
            i = bisect_right(self._starts, at) - 1
            if i != last:
                yield i, at == self._starts[i]
                last = i
            at = self._haystack.find(lower, at + 1)


class TitleCache:
    """The ``TitleIndex`` of the loaded data set, rebuilt only when a new ingestion is recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dataset: tuple | None = None
        self._index: TitleIndex | None = None

    def get(self, dataset: tuple | None) -> TitleIndex | None:
        """The cached index if it is for ``dataset`` (a ``DATASET_SQL`` row), else None: load the titles."""
        with self._lock:
            return self._index if self._index is not None and self._dataset == dataset else None

    def put(self, dataset: tuple | None, movies: Iterable[tuple[int, str]]) -> TitleIndex:
        index = TitleIndex(movies)
        with self._lock:
            self._dataset, self._index = dataset, index
        return index


CACHE = TitleCache()  # one per process: the API workers and a DAG task each hold their own


def index_for(conn: Any) -> TitleIndex:
    """The title index for the data set behind ``conn`` (a psycopg connection), from the cache when current."""
    row = conn.execute(DATASET_SQL).fetchone()
    dataset = None if row is None else tuple(row)
    index = CACHE.get(dataset)
    if index is None:
        index = CACHE.put(dataset, conn.execute(TITLES_SQL).fetchall())
    return index


async def index_for_async(conn: Any) -> TitleIndex:
    """``index_for`` for an async psycopg connection."""
    row = await (await conn.execute(DATASET_SQL)).fetchone()
    dataset = None if row is None else tuple(row)
    index = CACHE.get(dataset)
    if index is None:
        index = CACHE.put(dataset, await (await conn.execute(TITLES_SQL)).fetchall())
    return index
