"""Full-catalogue top-N evaluation: the list a user actually gets, measured.

For every test user, every movie of the catalogue that is not in the user's training part
is a candidate; a method's scores rank those candidates, and its top K is compared with
the user's relevant test movies (rating >= ``RELEVANT``). This is what the nightly
ranking publishes (each user's unseen movies in rank order), unlike the per-user
test-item metrics in ``evaluate`` that only reorder the movies a user is known to have
rated (Cremonesi, Koren, Turrin, RecSys 2010, on why the two disagree).

A method is a ``ScoreFn``: scores for a block of users against every movie, higher is
better. Training items are masked here, never by the method, so no method can win by
recommending what the user has already rated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

RELEVANT = 4  # a test rating >= 4 counts as relevant
KS = (10, 50)
BLOCK_USERS = 256  # users scored per call: bounded memory for large catalogues

# ScoreFn(user_ids, movie_ids) -> float array [len(user_ids), len(movie_ids)]
ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

PROTOCOL = (
    "Full-catalogue top-N: for each test user with at least one relevant test movie "
    f"(rating >= {RELEVANT}), every movie not in that user's training part is ranked by the "
    "method's score (ties by movie id) and the top K is compared with the user's relevant test movies. "
    "Recall@K = relevant in top K / min(K, relevant test movies); NDCG@K with binary gain "
    "(ideal = min(K, relevant) hits first); HR@K = share of users with at least one hit; "
    "coverage = distinct movies in all users' top 10 / catalogue size; novelty = mean training "
    "popularity (share of training users who rated it) of the movies in the top 10."
)


@dataclass(frozen=True)
class Catalogue:
    """The universe of the protocol: users and movies (sorted ids) and who rated what in training."""

    user_ids: np.ndarray
    movie_ids: np.ndarray
    train: pd.DataFrame  # user_id, movie_id (rating, ...) of the training part

    @classmethod
    def from_frames(cls, users: np.ndarray, movies: np.ndarray, train: pd.DataFrame) -> Catalogue:
        return cls(np.sort(np.asarray(users, np.int64)), np.sort(np.asarray(movies, np.int64)), train)

    def index(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Row (user) and column (movie) positions of a frame's pairs; -1 where unknown."""
        rows = _positions(self.user_ids, frame["user_id"].to_numpy(np.int64))
        cols = _positions(self.movie_ids, frame["movie_id"].to_numpy(np.int64))
        return rows, cols

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean [users, movies] of the frame's pairs (pairs outside the catalogue ignored)."""
        rows, cols = self.index(frame)
        keep = (rows >= 0) & (cols >= 0)
        out = np.zeros((len(self.user_ids), len(self.movie_ids)), dtype=bool)
        out[rows[keep], cols[keep]] = True
        return out

    def popularity(self) -> np.ndarray:
        """Share of training users who rated each movie."""
        _, cols = self.index(self.train)
        counts = np.bincount(cols[cols >= 0], minlength=len(self.movie_ids)).astype(np.float64)
        users = max(1, self.train["user_id"].nunique())
        return counts / users


def _positions(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(sorted_ids, values)
    pos = np.minimum(pos, max(len(sorted_ids) - 1, 0))
    found = len(sorted_ids) > 0
    return np.where(found & (sorted_ids[pos] == values), pos, -1) if found else np.full(len(values), -1)


def top_k(scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k best unseen entries, best first, ties by the lower column.

    A stable full sort per row: exact ties are settled the same way as the published rank.
    """
    keyed = np.where(seen, np.inf, -scores.astype(np.float64))
    return np.argsort(keyed, axis=1, kind="stable")[:, : min(k, scores.shape[1])]


def evaluate_topn(
    score: ScoreFn, catalogue: Catalogue, test: pd.DataFrame, ks: tuple[int, ...] = KS
) -> dict[str, float]:
    """Recall/NDCG/HR at each K, coverage and novelty of the top 10 (see ``PROTOCOL``)."""
    seen_all = catalogue.matrix(catalogue.train)
    relevant_all = catalogue.matrix(test[test["rating"] >= RELEVANT]) & ~seen_all
    users = np.flatnonzero(relevant_all.any(axis=1))
    kmax = max(*ks, 10)  # coverage and novelty read the top 10
    discounts = 1.0 / np.log2(np.arange(kmax) + 2.0)
    sums = {f"{name}@{k}": 0.0 for k in ks for name in ("recall", "ndcg", "hr")}
    in_top10: set[int] = set()
    novelty_sum, novelty_n = 0.0, 0
    popularity = catalogue.popularity()
    for start in range(0, len(users), BLOCK_USERS):
        rows = users[start : start + BLOCK_USERS]
        scores = np.asarray(score(catalogue.user_ids[rows], catalogue.movie_ids), dtype=np.float64)
        if scores.shape != (len(rows), len(catalogue.movie_ids)):
            raise ValueError(
                f"score function returned {scores.shape}, expected {(len(rows), len(catalogue.movie_ids))}"
            )
        best = top_k(np.nan_to_num(scores, nan=-np.inf), seen_all[rows], kmax)
        hits = np.take_along_axis(relevant_all[rows], best, axis=1)
        n_rel = relevant_all[rows].sum(axis=1)
        for k in ks:
            h = hits[:, :k]
            ideal = np.cumsum(discounts[:k])[np.minimum(n_rel, k) - 1]
            sums[f"recall@{k}"] += float(np.sum(h.sum(axis=1) / np.minimum(n_rel, k)))
            # h is narrower than k when the catalogue has fewer than k movies
            sums[f"ndcg@{k}"] += float(np.sum((h * discounts[: h.shape[1]]).sum(axis=1) / ideal))
            sums[f"hr@{k}"] += float(np.sum(h.any(axis=1)))
        top10 = best[:, :10]
        listed = ~np.take_along_axis(seen_all[rows], top10, axis=1)  # a user with < 10 unseen movies
        in_top10.update(np.unique(top10[listed]).tolist())
        novelty_sum += float(popularity[top10][listed].sum())
        novelty_n += int(listed.sum())
    n = len(users)
    out = {key: (value / n if n else float("nan")) for key, value in sums.items()}
    out["coverage@10"] = len(in_top10) / len(catalogue.movie_ids) if len(catalogue.movie_ids) else float("nan")
    out["distinct@10"] = len(in_top10)
    out["novelty@10"] = novelty_sum / novelty_n if novelty_n else float("nan")
    out["topn_users"] = int(n)
    return out


def matrix_scores(values: np.ndarray, catalogue: Catalogue) -> ScoreFn:
    """A ScoreFn over a precomputed [all users, all movies] matrix in catalogue order."""
    row_of = {int(u): i for i, u in enumerate(catalogue.user_ids)}

    def score(user_ids: np.ndarray, movie_ids: np.ndarray) -> np.ndarray:
        rows = [row_of[int(u)] for u in user_ids]
        return values[rows][:, _positions(catalogue.movie_ids, np.asarray(movie_ids, np.int64))]

    return score
