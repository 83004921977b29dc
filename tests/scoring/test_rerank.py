"""recsys.scoring.rerank against the real ML-100K database and a published baseline ranking.

The published ranking's score order differs from its rating order (``tests/support/api.py``),
so ordering or reporting by the wrong number shows up.
"""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from recsys.db.engine import make_engine
from recsys.scoring.rerank import (
    NoPublishedRanking,
    TooManyCandidates,
    UnknownUser,
    build_result,
    rerank,
)
from recsys.scoring.rerank_limits import MAX_CANDIDATES
from tests.support.api import Published
from tests.support.db import as_role, db_fingerprint

ORIGINAL = ["Toy Story (1995)", "GoldenEye (1995)", "Heat (1995)"]


@pytest.fixture
def conn(current_baseline: Published):
    engine = make_engine(as_role(current_baseline.url))  # the API's read-only role
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def test_original_payload_is_ranked_by_the_published_scores(conn, current_baseline):
    result = rerank(conn, 17, ORIGINAL)
    assert result.model_version == current_baseline.version
    assert result.run_id == current_baseline.run_id
    assert [c.title for c in result.ranked] != [] and not result.unknown_titles and not result.duplicates
    assert [c.movie_id for c in result.ranked] == current_baseline.expected_rerank(17, [1, 2, 273])
    for candidate in result.ranked:
        assert np.float32(candidate.score) == current_baseline.score(17, candidate.movie_id)
        assert np.float32(candidate.predicted_rating) == current_baseline.rating(17, candidate.movie_id)
        assert candidate.seen == ((17, candidate.movie_id) in current_baseline.seen)
        assert (candidate.rank is None) == candidate.seen


def published_order(conn, user_id: int, movie_ids: list[int]) -> list[int]:
    """The order the published ranking itself gives these movies, straight from the view."""
    return (
        conn.execute(
            sa.text(
                "SELECT movie_id FROM recsys.current_ranked_scores WHERE user_id = :u AND movie_id = ANY(:m) "
                "ORDER BY rank NULLS LAST, score DESC, movie_id"
            ),
            {"u": user_id, "m": movie_ids},
        )
        .scalars()
        .all()
    )


@pytest.mark.parametrize("user_id", [17, 42, 405])
def test_rerank_order_is_the_published_rank_order(conn, current_baseline, user_id):
    """Unseen candidates by published rank, then seen ones by score; never by the rating."""
    rated = sorted(m for u, m in current_baseline.seen if u == user_id)
    candidates = sorted(set(range(1, 1683, 7)) | set(rated[:40]))
    result = rerank(conn, user_id, movie_ids=candidates[::-1])
    got = [c.movie_id for c in result.ranked]
    assert got == published_order(conn, user_id, candidates) == current_baseline.expected_rerank(user_id, candidates)
    unseen = [c for c in result.ranked if not c.seen]
    assert [c.rank for c in unseen] == sorted(c.rank for c in unseen)
    assert all(c.seen and c.rank is None for c in result.ranked[len(unseen) :])
    assert any(c.seen for c in result.ranked)
    # the fixture's point: by rating the same candidates would come in another order
    by_rating = sorted(unseen, key=lambda c: (-c.predicted_rating, c.movie_id))
    assert [c.movie_id for c in by_rating] != [c.movie_id for c in unseen]
    for c in result.ranked:
        assert np.float32(c.score) == current_baseline.score(user_id, c.movie_id)
        assert np.float32(c.predicted_rating) == current_baseline.rating(user_id, c.movie_id)
        assert 1 <= c.predicted_rating <= 5


def test_build_result_orders_by_rank_then_seen_by_score():
    """Ties: equal scores keep the published rank order (lower movie id first), seen ones last."""

    def row(position, movie_id, score, rank, rating=3.0):
        return (2, position, None, movie_id, movie_id, f"m{movie_id}", [], score, rank, rank is None, rating)

    run = (0, 0, None, None, None, None, None, None, None, None, None, 7, "v", None, True)
    rows = [
        (*row(1, 30, 2.0, None), None, None, None, None),  # seen, score 2
        (*row(2, 20, 1.0, 2), None, None, None, None),  # tie with 10 at score 1: rank 2 (higher id)
        (*row(3, 10, 1.0, 1, None), None, None, None, None),  # rank 1; no rating (a run before 0007)
        (*row(4, 5, 9.0, None), None, None, None, None),  # seen, highest score of all: still after unseen
        (*row(5, 40, 2.0, None), None, None, None, None),  # seen, ties with 30: lower id first
        run,
    ]
    result = build_result(1, rows, [])
    assert [c.movie_id for c in result.ranked] == [10, 20, 5, 30, 40]
    assert [c.predicted_rating for c in result.ranked] == [None, 3.0, 3.0, 3.0, 3.0]


def test_ranks_are_the_users_ranks_among_unseen_movies(conn, current_baseline):
    order = current_baseline.expected_ranking(17)
    picks = order.movie_id.iloc[[0, 5, 99, 400]].tolist()
    result = rerank(conn, 17, movie_ids=picks[::-1])
    assert [c.movie_id for c in result.ranked] == picks
    assert [c.rank for c in result.ranked] == [1, 6, 100, 401]


def test_duplicated_title_reports_every_movie_and_ranks_them_all(conn, current_baseline):
    result = rerank(conn, 17, ["Chasing Amy (1997)"])
    assert [(a.title, a.movie_ids) for a in result.ambiguous_titles] == [("Chasing Amy (1997)", [246, 268])]
    assert sorted(c.movie_id for c in result.ranked) == [246, 268]


def test_all_18_duplicated_titles_of_movielens(conn):
    duplicated = conn.execute(
        sa.text(
            "SELECT title, array_agg(movie_id ORDER BY movie_id) FROM recsys.movies GROUP BY title HAVING count(*) > 1"
        )
    ).all()
    assert len(duplicated) == 18
    result = rerank(conn, 1, [title for title, _ in duplicated])
    assert {a.title: a.movie_ids for a in result.ambiguous_titles} == {t: ids for t, ids in duplicated}
    assert len(result.ranked) == sum(len(ids) for _, ids in duplicated)


def test_unknown_titles_and_ids_are_reported_not_dropped(conn):
    result = rerank(conn, 17, ["Toy Story (1995)", "No Such Movie (2099)"], [2, 99_999])
    assert result.unknown_titles == ["No Such Movie (2099)"]
    assert result.unknown_movie_ids == [99_999]
    assert sorted(c.movie_id for c in result.ranked) == [1, 2]


def test_reported_lists_follow_the_request_order(conn):
    titles = ["zz none", "Chasing Amy (1997)", "aa none", "Heat (1995)", "mm none", "CHASING AMY (1997)"]
    result = rerank(conn, 17, titles, [99_999, 2, 88_888])
    assert result.unknown_titles == ["zz none", "aa none", "mm none"]
    assert [a.title for a in result.ambiguous_titles] == ["Chasing Amy (1997)", "CHASING AMY (1997)"]
    assert result.unknown_movie_ids == [99_999, 88_888]


def test_exact_matches_win_else_every_case_insensitive_match(current_baseline):
    with current_baseline.engine.connect() as conn:  # owner role; rolled back at the end
        conn.execute(sa.text("INSERT INTO recsys.movies (movie_id, title) VALUES (99997, 'HEAT (1995)')"))
        exact = rerank(conn, 17, ["Heat (1995)"])
        folded = rerank(conn, 17, ["heat (1995)"])
        conn.rollback()
    assert [c.movie_id for c in exact.ranked] == [273] and not exact.ambiguous_titles
    assert [(a.title, a.movie_ids) for a in folded.ambiguous_titles] == [("heat (1995)", [273, 99997])]
    assert folded.unscored_movie_ids == [99997]  # added after the run


def test_duplicates_are_answered_once_and_reported(conn):
    titles = ["Heat (1995)", "Heat (1995)", "  heat (1995) ", "GoldenEye (1995)", "Heat (1995)"]
    result = rerank(conn, 17, titles, [273, 273, 2])
    assert sorted(c.movie_id for c in result.ranked) == [2, 273]
    assert result.duplicates == ["Heat (1995)", 273]
    assert not result.unknown_titles


def test_unknown_user_is_a_clear_error(conn, current_baseline):
    with pytest.raises(UnknownUser, match="user 99999 is not in the published ranking") as info:
        rerank(conn, 99_999, ORIGINAL)
    assert info.value.run_id == current_baseline.run_id


def test_no_published_ranking(empty_db_url: str):
    engine = make_engine(as_role(empty_db_url))
    with engine.connect() as conn, pytest.raises(NoPublishedRanking):
        rerank(conn, 1, ORIGINAL)
    engine.dispose()


def test_too_many_candidates(conn):
    with pytest.raises(TooManyCandidates):
        rerank(conn, 17, ["x"] * MAX_CANDIDATES, list(range(1, MAX_CANDIDATES + 2)))  # both lists, one over


def test_movie_added_after_the_run_is_reported_unscored(current_baseline):
    with current_baseline.engine.connect() as conn:  # owner role; rolled back at the end
        conn.execute(sa.text("INSERT INTO recsys.movies (movie_id, title) VALUES (99998, 'Brand New (2026)')"))
        result = rerank(conn, 17, ["Brand New (2026)", "Heat (1995)"])
        conn.rollback()
    assert result.unscored_movie_ids == [99998]
    assert [c.movie_id for c in result.ranked] == [273]


@pytest.mark.parametrize(
    "title",
    [
        "'; DROP TABLE recsys.movies; --",
        "Heat (1995)' OR '1'='1",
        "%",
        "_",
        "\\",
        '"quoted"',
        "Amélie (2001) 🎬 漢字",
        "x" * 5000,
        "$1",
        ":user_id",
    ],
)
def test_hostile_titles_are_just_titles(conn, current_baseline, title):
    before = db_fingerprint(current_baseline.engine)
    result = rerank(conn, 17, [title, "Heat (1995)"])
    assert result.unknown_titles == [title.strip()]
    assert [c.movie_id for c in result.ranked] == [273]
    assert db_fingerprint(current_baseline.engine) == before


def test_unknown_titles_get_suggestions_and_k_cuts_only_the_ranking(conn):
    from recsys.scoring import title_match

    result = rerank(conn, 17, ["Toy Stroy (1995)", "toy story", "Heat", "heat (1995)", "zzzzqx"], [1, 2, 3], k=2)
    assert result.unknown_titles == ["Toy Stroy (1995)", "toy story", "Heat", "zzzzqx"]
    assert [s.title for s in result.suggestions] == result.unknown_titles
    first = [s.matches[0].movie_id if s.matches else None for s in result.suggestions]
    assert first == [1, 1, 273, None]
    assert [m.movie_id for m in result.suggestions[1].matches] == [1]  # a substring of one title only
    assert len(result.ranked) == 2
    assert [c.movie_id for c in result.ranked] == [
        c.movie_id for c in rerank(conn, 17, ["heat (1995)"], [1, 2, 3]).ranked
    ][:2]
    assert title_match.CACHE.get(tuple(conn.execute(sa.text(title_match.DATASET_SQL)).one())) is not None


def test_title_cache_is_rebuilt_when_the_dataset_changes():
    from recsys.scoring.title_match import TitleCache

    cache = TitleCache()
    first = cache.put((1, "a"), [(1, "Heat (1995)")])
    assert cache.get((1, "a")) is first and cache.get((2, "b")) is None
    assert cache.put((2, "b"), [(7, "Heathers (1989)")]).suggest("heat")[0].movie_id == 7
