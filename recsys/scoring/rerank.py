"""Rerank a user's candidate movies by the published ranking, for the API and the rerank DAG.

Titles are lookups, not keys (MovieLens has 18 duplicated titles), so a title resolves to
zero, one or several movie ids, and the caller is told which. Resolution and the score
lookup are ONE SQL statement: PostgreSQL gives a statement one snapshot, so the scores,
ranks and the model version all come from the same published run even while a new run is
being published. Only the published ranking is read; no model is loaded.

The candidates come back in the published ranking's own order: the unseen ones by their
published ``rank`` (which orders by the ranking ``score``, ties by the lower movie id),
then the ones the user has rated (no rank), by score the same way. ``predicted_rating``
(1-5) is reported beside the score but never orders anything.

Matching is case-insensitive and ignores surrounding whitespace; everything is passed as
bound parameters (arrays), never spliced into the SQL. The statement is ``rerank`` in
``sql/queries/lookup.sql``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter

import psycopg
import sqlalchemy as sa

from recsys.db.sql import queries
from recsys.errors import RecsysError
from recsys.scoring import title_match
from recsys.scoring.rerank_limits import MAX_PER_REQUEST
from recsys.scoring.title_match import TitleSuggestions


class RerankError(RecsysError):
    """The request cannot be answered as given."""


class UnknownUser(RerankError):
    """The user has no row in the published ranking."""

    def __init__(self, user_id: int, run_id: int):
        super().__init__(f"user {user_id} is not in the published ranking (run {run_id})")
        self.user_id = user_id
        self.run_id = run_id


class NoPublishedRanking(RerankError):
    """No precompute run has been published yet."""

    def __init__(self) -> None:
        super().__init__("no ranking has been published yet; run the precompute first")


class TooManyCandidates(RerankError):
    """More candidates than one request may rank."""


@dataclass(frozen=True)
class RankedCandidate:
    movie_id: int
    title: str
    genres: list[str]
    score: float  # the ranking score: orders the list, higher first; not a rating
    rank: int | None  # among the user's unseen movies; None when the user has rated it
    seen: bool
    predicted_rating: float | None  # 1-5; None for a run published before migration 0007


@dataclass(frozen=True)
class AmbiguousTitle:
    title: str
    movie_ids: list[int]


@dataclass
class RerankResult:
    user_id: int
    run_id: int
    model_version: str
    published_at: datetime
    ranked: list[RankedCandidate] = field(default_factory=list)
    unknown_titles: list[str] = field(default_factory=list)
    ambiguous_titles: list[AmbiguousTitle] = field(default_factory=list)
    unknown_movie_ids: list[int] = field(default_factory=list)
    unscored_movie_ids: list[int] = field(default_factory=list)  # in recsys.movies, not in the run
    duplicates: list[str | int] = field(default_factory=list)  # repeated inputs, answered once
    suggestions: list[TitleSuggestions] = field(default_factory=list)  # one per unknown title, in its order

    def top(self, k: int | None) -> RerankResult:
        """Only the best ``k`` ranked candidates (all when ``k`` is None); every other list is kept."""
        if k is not None:
            self.ranked = self.ranked[:k]
        return self


# The statement that resolves and scores the candidates, in psycopg's %(name)s style
# (sql/queries/lookup.sql, which says how it reads the published run); the API runs it too.
RERANK_SQL = queries("lookup").rerank.sql


def normalise_title(title: str) -> str:
    return title.strip()


def unique(items: Iterable[str | int]) -> tuple[list, list]:
    """(first occurrences in order, repeated items in order of their first repeat)."""
    seen: set = set()
    firsts: list = []
    repeats: list = []
    for item in items:
        if item in seen:
            if item not in repeats:
                repeats.append(item)
        else:
            seen.add(item)
            firsts.append(item)
    return firsts, repeats


def rerank_params(user_id: int, titles: Sequence[str] = (), movie_ids: Sequence[int] = ()) -> tuple[dict, list]:
    """Bound parameters for ``RERANK_SQL`` and the duplicates that were dropped."""
    if len(titles) + len(movie_ids) > MAX_PER_REQUEST:
        raise TooManyCandidates(f"at most {MAX_PER_REQUEST} candidates per request, got {len(titles) + len(movie_ids)}")
    unique_titles, dup_titles = unique(normalise_title(t) for t in titles)
    unique_ids, dup_ids = unique(int(i) for i in movie_ids)
    params = {
        "user_id": int(user_id),
        "titles": json.dumps(unique_titles),  # ASCII: non-ASCII and quotes as JSON escapes
        "movie_ids": "{" + ",".join(map(str, unique_ids)) + "}",  # integers: nothing to quote
    }
    return params, dup_titles + dup_ids


_RUN, _TITLE, _ID = 0, 1, 2  # RERANK_SQL's parts
_request_order = itemgetter(0, 1)


def published_order(candidate: RankedCandidate) -> tuple:
    """Sort key: the order of the published ranking, extended to the movies it does not rank.

    Unseen movies sort by their published ``rank`` itself, unique per user, so their order
    is the published one by construction (``ranking.ranks``: score descending, ties by
    the lower movie id) with no float comparison that could disagree with it. Seen movies
    (no rank) come after every unseen one, by score descending then movie id, the rule the
    ranks follow.
    """
    if candidate.rank is not None:
        return (0, candidate.rank, 0.0, 0)
    return (1, 0, -candidate.score, candidate.movie_id)


def build_result(user_id: int, rows: Iterable[Sequence], duplicates: list) -> RerankResult:
    """Turn ``RERANK_SQL`` rows into a result; raises for no ranking or an unknown user.

    Rows are unpacked by position (the SELECT's column order): named access on SQLAlchemy
    rows costs more than the query itself for 1,000 candidates. They are taken in request
    order (part, position), so every list in the result follows the request.
    """
    run = None
    candidates: dict[int, RankedCandidate] = {}
    title_ids: dict[str, list[int]] = {}
    unknown_ids: list[int] = []
    unscored: list[int] = []
    for row in sorted(rows, key=_request_order):
        part, _, requested_title, requested_id, movie_id, title, genres, score, rank, seen, rating, *run_columns = row
        if part == _RUN:
            run = run_columns
            continue
        if part == _TITLE:
            ids = title_ids.setdefault(requested_title, [])
            if movie_id is not None:
                ids.append(movie_id)
        elif movie_id is None:
            unknown_ids.append(requested_id)
        if movie_id is None:
            continue
        if score is None:
            if movie_id not in unscored:
                unscored.append(movie_id)
            continue
        candidates[movie_id] = RankedCandidate(
            movie_id,
            title,
            list(genres or []),
            float(score),
            rank,
            bool(seen),
            None if rating is None else float(rating),
        )
    if run is None:
        raise NoPublishedRanking()
    run_id, model_version, published_at, user_known = run
    if not user_known:
        raise UnknownUser(user_id, run_id)
    result = RerankResult(user_id, run_id, model_version, published_at, duplicates=duplicates)
    result.unknown_movie_ids, result.unscored_movie_ids = unknown_ids, unscored
    for requested, ids in title_ids.items():
        if not ids:
            result.unknown_titles.append(requested)
        elif len(ids) > 1:
            result.ambiguous_titles.append(AmbiguousTitle(requested, sorted(ids)))
    result.ranked = sorted(candidates.values(), key=published_order)
    return result


def rerank(
    conn: sa.Connection | psycopg.Connection,
    user_id: int,
    titles: Sequence[str] = (),
    movie_ids: Sequence[int] = (),
    k: int | None = None,
) -> RerankResult:
    """Rank the candidates (titles and/or ids) for ``user_id`` by the published ranking.

    ``conn``: a SQLAlchemy connection (DAGs, tools) or a psycopg one; the statement runs
    in the caller's transaction, if any. Unknown titles get ``title_match`` suggestions
    (the titles are read only then, and once per data set). The API runs the same
    statement, result builder and suggestions (``recsys.api.queries.rerank``).
    """
    if isinstance(conn, sa.Connection):
        conn = conn.connection.driver_connection
    params, duplicates = rerank_params(user_id, titles, movie_ids)
    rows = conn.execute(RERANK_SQL, params).fetchall()
    result = build_result(int(user_id), rows, duplicates)
    if result.unknown_titles:
        result.suggestions = title_match.index_for(conn).suggestions(result.unknown_titles)
    return result.top(k)


async def rerank_async(
    conn: psycopg.AsyncConnection,
    user_id: int,
    titles: Sequence[str] = (),
    movie_ids: Sequence[int] = (),
    k: int | None = None,
) -> RerankResult:
    """``rerank`` for an async psycopg connection: same statement, same result."""
    params, duplicates = rerank_params(user_id, titles, movie_ids)
    cur = await conn.execute(RERANK_SQL, params)
    result = build_result(int(user_id), await cur.fetchall(), duplicates)
    if result.unknown_titles:
        result.suggestions = (await title_match.index_for_async(conn)).suggestions(result.unknown_titles)
    return result.top(k)
