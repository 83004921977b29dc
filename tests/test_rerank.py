"""recsys.scoring.rerank against the real ML-100K database and a published baseline ranking."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from test_api_support import Published, as_role, baseline, current_baseline, db_fingerprint  # noqa: F401

from recsys.db.engine import make_engine
from recsys.scoring.rerank import MAX_CANDIDATES, NoPublishedRanking, TooManyCandidates, UnknownUser, rerank

ORIGINAL = ["Toy Story (1995)", "GoldenEye (1995)", "Heat (1995)"]


@pytest.fixture
def conn(current_baseline: Published):  # noqa: F811
    engine = make_engine(as_role(current_baseline.url))  # the API's read-only role
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def test_original_payload_is_ranked_by_the_published_scores(conn, current_baseline):  # noqa: F811
    result = rerank(conn, 17, ORIGINAL)
    assert result.model_version == current_baseline.version
    assert result.run_id == current_baseline.run_id
    assert [c.title for c in result.ranked] != [] and not result.unknown_titles and not result.duplicates
    expected = sorted(((current_baseline.score(17, m), m) for m in (1, 2, 273)), key=lambda pair: (-pair[0], pair[1]))
    assert [c.movie_id for c in result.ranked] == [m for _, m in expected]
    for candidate in result.ranked:
        assert np.float32(candidate.score) == current_baseline.score(17, candidate.movie_id)
        assert candidate.seen == ((17, candidate.movie_id) in current_baseline.seen)
        assert (candidate.rank is None) == candidate.seen


def test_ranks_are_the_users_ranks_among_unseen_movies(conn, current_baseline):  # noqa: F811
    order = current_baseline.expected_ranking(17)
    picks = order.movie_id.iloc[[0, 5, 99, 400]].tolist()
    result = rerank(conn, 17, movie_ids=picks[::-1])
    assert [c.movie_id for c in result.ranked] == picks
    assert [c.rank for c in result.ranked] == [1, 6, 100, 401]


def test_duplicated_title_reports_every_movie_and_ranks_them_all(conn, current_baseline):  # noqa: F811
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


def test_exact_matches_win_else_every_case_insensitive_match(current_baseline):  # noqa: F811
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


def test_unknown_user_is_a_clear_error(conn, current_baseline):  # noqa: F811
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
        rerank(conn, 17, ["x"] * (MAX_CANDIDATES - 9), list(range(1, 11)))


def test_movie_added_after_the_run_is_reported_unscored(current_baseline):  # noqa: F811
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
def test_hostile_titles_are_just_titles(conn, current_baseline, title):  # noqa: F811
    before = db_fingerprint(current_baseline.engine)
    result = rerank(conn, 17, [title, "Heat (1995)"])
    assert result.unknown_titles == [title.strip()]
    assert [c.movie_id for c in result.ranked] == [273]
    assert db_fingerprint(current_baseline.engine) == before
