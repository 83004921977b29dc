"""A shard's ranking in numpy: which pairs each user has seen, ranks, rows for binary COPY.

``score`` (the ranking score) orders a user's unseen movies; ``predicted_rating`` rides
along and orders nothing. The rows are encoded with ``copy_binary`` in the order the
ranks give, so each user's top-k sits in a few pages of the leaf.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from recsys.scoring import copy_binary

# The COPY column list that ``encode_rows`` produces, in its order.
COPY_COLUMNS = "user_id, movie_id, score, rank, seen, predicted_rating"


def seen_mask(conn: sa.Connection, user_ids: np.ndarray, movie_ids: np.ndarray) -> np.ndarray:
    """[len(user_ids), len(movie_ids)], True where the user rated the movie, read from ``recsys.ratings``."""
    from recsys.db.store import rated_pairs

    return seen_in(*rated_pairs(conn, user_ids.tolist()), user_ids, movie_ids)


def seen_in(
    rated_users: np.ndarray, rated_movies: np.ndarray, user_ids: np.ndarray, movie_ids: np.ndarray
) -> np.ndarray:
    """[len(user_ids), len(movie_ids)], True where (user, movie) is a rated pair; both id arrays sorted.

    Pairs of other users or of unknown movies are ignored, so a shard can pass every rating.
    """
    seen = np.zeros((len(user_ids), len(movie_ids)), dtype=bool)
    rows = np.searchsorted(user_ids, rated_users)
    cols = np.searchsorted(movie_ids, rated_movies)
    valid = (rows < len(user_ids)) & (cols < len(movie_ids))
    rows, cols = rows[valid], cols[valid]
    hit = (user_ids[rows] == rated_users[valid]) & (movie_ids[cols] == rated_movies[valid])
    seen[rows[hit], cols[hit]] = True
    return seen


def ranks(scores: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank among unseen movies by score, ties broken by the lower movie id; 0 = seen.

    ``movie_ids`` are sorted ascending, so a stable sort on the negated score breaks ties
    by movie id deterministically. Also returns that sort order (per user: unseen movies
    by rank, then seen movies), which is the order the rows are written in.
    """
    keyed = np.where(seen, np.inf, -scores.astype(np.float64))
    order = np.argsort(keyed, axis=1, kind="stable")
    ranked = np.empty_like(order, dtype=np.int32)
    np.put_along_axis(ranked, order, np.arange(1, scores.shape[1] + 1, dtype=np.int32)[None, :], axis=1)
    return np.where(seen, 0, ranked), order


def encode_rows(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    scores: np.ndarray,
    ratings: np.ndarray,
    ranks: np.ndarray,
    order: np.ndarray,
) -> bytes:
    """Rows sorted by (user, rank), seen movies last, so each user's top-k sits in a few pages.

    Columns in the order of ``COPY_COLUMNS``: user_id, movie_id, score, rank, seen,
    predicted_rating.
    """
    n_users, n_movies = scores.shape
    flat_users = np.repeat(user_ids, n_movies)
    flat_movies = movie_ids[order].ravel()
    flat_scores = np.take_along_axis(scores, order, axis=1).ravel()
    flat_ratings = np.take_along_axis(ratings, order, axis=1).ravel()
    flat_ranks = np.take_along_axis(ranks, order, axis=1).ravel()
    batches = []
    for is_seen in (False, True):
        pick = flat_ranks == 0 if is_seen else flat_ranks > 0
        batches.append(
            copy_binary.encode(
                [
                    ("user_id", "int4", flat_users[pick]),
                    ("movie_id", "int4", flat_movies[pick]),
                    ("score", "float4", flat_scores[pick]),
                    ("rank", "int4", None if is_seen else flat_ranks[pick]),
                    ("seen", "bool", is_seen),
                    ("predicted_rating", "float4", flat_ratings[pick]),
                ],
                int(pick.sum()),
            )
        )
    return _join_copy_payloads(batches)


def _join_copy_payloads(payloads: list[bytes]) -> bytes:
    """One COPY stream: the first header, every batch's tuples, one trailer."""
    header, trailer = len(copy_binary.HEADER), len(copy_binary.TRAILER)
    return copy_binary.HEADER + b"".join(p[header:-trailer] for p in payloads) + copy_binary.TRAILER
