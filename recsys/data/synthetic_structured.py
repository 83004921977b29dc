"""Rating data made up at any size with the structure real data has (issue #12, item 4).

``recsys.data.synthetic`` makes small uniform-random archives that tests edit line by line;
this module makes data sets a model can learn from and a benchmark can scale: the scale
benchmark (bench/scale.py) and the tests that need signal use it. The story, each part
vectorised with numpy (10 M ratings take seconds, not a loop per rating):

- movies get genres first (at MovieLens 1M's rates), a year (mostly recent), latent factors
  that are partly their genres' (so genres carry signal about taste) and partly their own,
  and a bias that is partly their genres' (documentaries rate higher than horror);
- users get a gender, an age group and an occupation (at rates like ML-1M's) and a taste
  vector and a bias that are partly those demographics' (so they carry signal too);
- how many movies a user rates is long-tailed with a floor of 20 (as in every MovieLens
  release); which ones is drawn by a lognormal popularity that is correlated with the
  movie's bias (good movies are seen more), and a movie the user would like is accepted
  more often (what people rate is not random, and the model's history bags can see it);
- the rating is ``mean + user bias + movie bias + taste . factors + noise``, rounded to the
  layout's scale and clipped. The variance shares are set so the rating spread, the spread
  of user and movie means and the popularity curve look like ML-100K's (top 10% of movies
  ~40% of ratings).

``SyntheticData`` keeps the true biases and factors, so a test can check the structure.
The renderers write the ML-1M ``.dat`` layout (demographics, no split files: the cheapest
at large sizes) and the CSV layout (half stars, no demographics).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from math import sqrt

import numpy as np
import pandas as pd

from recsys.data.adapters import HALF_STARS, STARS, RatingScale
from recsys.data.movielens_1m import AGES, GENRES, OCCUPATIONS

# ML-1M's movies.dat: movies per genre (3,883 movies; a movie has 1.65 genres on average).
GENRE_COUNTS = {
    "Drama": 1603, "Comedy": 1200, "Action": 503, "Thriller": 492, "Romance": 471, "Horror": 343,
    "Adventure": 283, "Sci-Fi": 276, "Children's": 251, "Crime": 211, "War": 143, "Documentary": 127,
    "Musical": 114, "Mystery": 106, "Animation": 105, "Fantasy": 68, "Western": 68, "Film-Noir": 44,
}  # fmt: skip
GENRE_RATES = np.array([GENRE_COUNTS[g] for g in GENRES]) / 3883
AGE_SHARES = np.array([222, 1103, 2096, 1193, 550, 496, 380]) / 6040  # ML-1M users per age group
MALE_SHARE = 0.72  # ML-1M: 4,331 of 6,040
MIN_PER_USER = 20  # every MovieLens release keeps only users with at least 20 ratings
MAX_USER_SHARE = 0.5  # no user rates more than half the catalogue
LATENT_DIMS = 8
# Standard deviations of the rating's parts (before rounding): ML-100K's ratings have sd 1.13,
# its user means sd 0.45 and its movie means (movies with 20+ ratings) sd 0.53.
MEAN, USER_BIAS_SD, MOVIE_BIAS_SD, TASTE_SD, NOISE_SD = 3.25, 0.45, 0.5, 0.5, 0.9
GENRE_SHARE = 0.6  # of a movie's factor variance that its genres explain
DEMOGRAPHIC_SHARE = 0.4  # of a user's taste variance that gender, age and occupation explain
POPULARITY_SD = 1.5  # of log popularity: ML-100K's top 10% of movies hold ~43% of ratings
POPULARITY_BIAS_CORR = 0.5  # ML-100K: movie mean vs log rating count, r = 0.47
SELECTION = 1.0  # how much more often a user rates what they like (logit per taste sd)
FIRST_RATING, LAST_RATING = 956_703_932, 1_046_454_590  # ML-1M's span: 2000-04-25 .. 2003-02-28
_TITLE_WORDS = (
    "Night", "Day", "Love", "Heart", "Road", "Star", "City", "Dark", "Blood", "House", "Man",
    "Woman", "Girl", "Boy", "Dead", "Last", "First", "Time", "Dream", "King", "Queen", "Moon",
    "Sun", "River", "Fire", "Ice", "Storm", "Shadow", "Ghost", "Secret", "Game", "War", "Story",
    "Kiss", "Summer", "Winter", "Street", "Island", "Lost", "Wild", "Big", "Little", "Red",
    "Black", "White", "Golden", "Silent", "Crazy",
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """A data set's size: users x movies is the number of pairs the precompute scores."""

    users: int
    movies: int
    ratings: int

    @property
    def pairs(self) -> int:
        return self.users * self.movies


ML_100K = Shape(943, 1682, 100_000)
ML_1M = Shape(6040, 3706, 1_000_209)  # the movies that have ratings (movies.dat lists 3,883)


def scaled(factor: float, base: Shape = ML_100K) -> Shape:
    """``factor`` times ``base``'s pairs at its ratings per user and aspect: users and movies x sqrt(factor).

    Real releases grow this way: ratings per user stay near 100-170 (ML-100K 106, ML-1M 166,
    ML-25M 153) while the catalogue grows, so the ratings grow as sqrt(factor) and the density falls.
    """
    side = sqrt(factor)
    users, movies = max(1, round(base.users * side)), max(1, round(base.movies * side))
    return Shape(users, movies, round(users * base.ratings / base.users))


@dataclass(frozen=True)
class SyntheticData:
    """Users, movies and ratings by index (user i has id i + 1), with the truths that made them."""

    shape: Shape
    gender: np.ndarray  # [users] "M"/"F"
    age_group: np.ndarray  # [users] index into AGES
    occupation: np.ndarray  # [users] ML-1M's occupation code 0-20
    zip_code: np.ndarray  # [users] five digits, as strings
    titles: np.ndarray  # [movies] without the year
    year: np.ndarray  # [movies]
    genres: np.ndarray  # [movies, len(GENRES)] bool
    user: np.ndarray  # [ratings] user index
    movie: np.ndarray  # [ratings] movie index
    raw: np.ndarray  # [ratings] the rating before rounding to a scale
    timestamp: np.ndarray  # [ratings] seconds since 1970
    user_bias: np.ndarray
    movie_bias: np.ndarray
    taste: np.ndarray  # [users, LATENT_DIMS]
    factors: np.ndarray  # [movies, LATENT_DIMS]
    popularity: np.ndarray  # [movies] relative weight of being drawn

    def ratings_on(self, scale: RatingScale) -> np.ndarray:
        """The ratings rounded to ``scale``'s steps and clipped to its range."""
        steps = np.rint((self.raw - scale.low) / scale.step)
        return scale.low + np.clip(steps, 0, scale.levels - 1) * scale.step


def generate(shape: Shape, seed: int = 0) -> SyntheticData:
    """A data set of exactly ``shape`` (every user rates at least min(20, ratings / users) movies and at most
    half of them); the same shape and seed give the same data."""
    counts = _counts_per_user(np.random.default_rng([seed, 1]), shape)  # first: it refuses an impossible shape
    rng = np.random.default_rng(seed)
    genres, year, factors, movie_bias = _movies(rng, shape.movies)
    gender, age_group, occupation, taste, user_bias = _users(rng, shape.users)
    buzz = POPULARITY_BIAS_CORR * _standard(movie_bias) + sqrt(1 - POPULARITY_BIAS_CORR**2) * _noise(rng, shape.movies)
    popularity = np.exp(POPULARITY_SD * buzz)
    user, movie = _rated_pairs(rng, counts, popularity, taste, factors)
    affinity = _rowwise_dot(taste, factors, user, movie)
    raw = MEAN + user_bias[user] + movie_bias[movie] + affinity + NOISE_SD * rng.standard_normal(len(user))
    return SyntheticData(
        shape=shape,
        gender=np.where(gender, "M", "F"),
        age_group=age_group,
        occupation=occupation,
        zip_code=np.char.zfill(rng.integers(1000, 99999, shape.users).astype(str), 5),
        titles=_titles(rng, genres),
        year=year,
        genres=genres,
        user=user,
        movie=movie,
        raw=raw,
        timestamp=_timestamps(rng, user, shape.users),
        user_bias=user_bias,
        movie_bias=movie_bias,
        taste=taste,
        factors=factors,
        popularity=popularity / popularity.sum(),
    )


def _noise(rng: np.random.Generator, *size: int) -> np.ndarray:
    return rng.standard_normal(size)


def _standard(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() or 1.0)


def _movies(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    genres = rng.random((n, len(GENRES))) < GENRE_RATES
    none = ~genres.any(axis=1)  # every movie has a genre: the likeliest of a random draw
    genres[none, np.argmax(rng.random((none.sum(), len(GENRES))) * GENRE_RATES, axis=1)] = True
    year = np.clip(2000 - np.floor(rng.exponential(12.0, n)), 1919, 2000).astype(np.int64)
    per_genre = genres / np.sqrt(genres.sum(axis=1, keepdims=True))  # unit variance whatever the count
    genre_factors = per_genre @ _noise(rng, len(GENRES), LATENT_DIMS)
    factors = sqrt(GENRE_SHARE) * genre_factors + sqrt(1 - GENRE_SHARE) * _noise(rng, n, LATENT_DIMS)
    factors[:, 0] = 0.5 * _standard(year.astype(float)) + sqrt(0.75) * factors[:, 0]  # old vs new films
    genre_bias = per_genre @ _noise(rng, len(GENRES))
    movie_bias = MOVIE_BIAS_SD * (0.5 * genre_bias + sqrt(0.75) * _noise(rng, n))
    return genres, year, factors, movie_bias - movie_bias.mean()  # centred: MEAN stays the mean


def _users(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    gender = rng.random(n) < MALE_SHARE
    age_group = rng.choice(len(AGES), n, p=AGE_SHARES)
    occupation_shares = rng.dirichlet(np.full(len(OCCUPATIONS), 2.0))
    occupation = rng.choice(len(OCCUPATIONS), n, p=occupation_shares)
    # Each demographic value has a taste vector and a bias; a user's are the sum of theirs.
    demographic = (
        _noise(rng, 2, LATENT_DIMS)[gender.astype(int)]
        + _noise(rng, len(AGES), LATENT_DIMS)[age_group]
        + _noise(rng, len(OCCUPATIONS), LATENT_DIMS)[occupation]
    ) / sqrt(3)
    unit = sqrt(DEMOGRAPHIC_SHARE) * demographic + sqrt(1 - DEMOGRAPHIC_SHARE) * _noise(rng, n, LATENT_DIMS)
    taste = unit * TASTE_SD / sqrt(LATENT_DIMS)  # sd of taste . factors = TASTE_SD (factors have unit variance)
    demographic_bias = (_noise(rng, len(AGES))[age_group] + _noise(rng, 2)[gender.astype(int)]) / sqrt(2)
    user_bias = USER_BIAS_SD * (0.4 * demographic_bias + sqrt(0.84) * _noise(rng, n))
    return gender, age_group, occupation, taste, user_bias - user_bias.mean()


def _counts_per_user(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Ratings per user: a floor plus a lognormal excess (ML-100K: min 20, median 65, mean 106), summing to
    exactly ``shape.ratings``, none above half the catalogue."""
    floor = min(MIN_PER_USER, shape.ratings // shape.users)
    cap = max(floor, int(shape.movies * MAX_USER_SHARE))
    if shape.ratings > shape.users * cap:
        raise ValueError(
            f"{shape.ratings:,} ratings do not fit {shape.users:,} users rating at most {cap:,} of {shape.movies:,} "
            "movies each"
        )
    excess = rng.lognormal(0.0, 1.15, shape.users)
    counts = np.full(shape.users, floor, dtype=np.int64)
    for _ in range(20):  # scale the excess to the total; users at the cap push the rest up
        left = shape.ratings - counts.sum()
        room = counts < cap
        if left <= 0 or not room.any():
            break
        counts[room] = np.minimum(cap, counts[room] + np.floor(excess[room] / excess[room].sum() * left))
    left = shape.ratings - counts.sum()
    while left > 0:  # the rounding remainder, one each to users with room
        room = np.flatnonzero(counts < cap)
        pick = rng.choice(room, size=min(left, len(room)), replace=False)
        counts[pick] += 1
        left -= len(pick)
    return counts


def _rowwise_dot(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``a[rows[i]] . b[cols[i]]`` for each i, in chunks (the gathered rows are LATENT_DIMS floats per pair)."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    out = np.empty(len(rows))
    for start in range(0, len(rows), 1 << 20):
        part = slice(start, start + (1 << 20))
        out[part] = np.einsum("ij,ij->i", a[rows[part]], b[cols[part]])
    return out


def _rated_pairs(
    rng: np.random.Generator, counts: np.ndarray, popularity: np.ndarray, taste: np.ndarray, factors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(user, movie) indices, ``counts[u]`` distinct movies per user, sorted by user.

    Candidates are drawn by popularity and accepted with a probability rising with the
    user's taste for the movie; a few rounds top up the users still short (duplicates are
    dropped; each round handles only their pairs), and the rare user the rounds cannot fill
    (a heavy rater among few movies) gets the rest uniformly from the movies not yet rated.
    """
    n_users, n_movies = len(counts), len(popularity)
    cdf = np.cumsum(popularity) / popularity.sum()
    user, movie = np.empty(0, np.int64), np.empty(0, np.int64)
    for _ in range(8):
        deficit = counts - np.bincount(user, minlength=n_users)
        short = np.flatnonzero(deficit > 0)
        if not len(short):
            break
        u = np.repeat(short, np.ceil(2.5 * deficit[short]).astype(np.int64))  # ~half are accepted
        m = np.minimum(np.searchsorted(cdf, rng.random(len(u)), side="right"), n_movies - 1)
        liking = _rowwise_dot(taste, factors, u, m) / TASTE_SD
        accepted = rng.random(len(u)) < 1 / (1 + np.exp(-SELECTION * liking))
        theirs = np.isin(user, short)
        topped = _distinct_up_to(
            rng, np.concatenate([user[theirs], u[accepted]]), np.concatenate([movie[theirs], m[accepted]]),
            counts, int(theirs.sum()), n_movies,
        )  # fmt: skip
        user, movie = np.concatenate([user[~theirs], topped[0]]), np.concatenate([movie[~theirs], topped[1]])
    have = np.bincount(user, minlength=n_users)
    short = np.flatnonzero(counts > have)
    if len(short):
        keys = rng.random((len(short), n_movies))
        rated = np.isin(user, short)
        keys[np.searchsorted(short, user[rated]), movie[rated]] = np.inf
        need = counts[short] - have[short]
        take = np.arange(n_movies)[None, :] < need[:, None]
        user = np.concatenate([user, np.repeat(short, need)])
        movie = np.concatenate([movie, np.argsort(keys, axis=1)[take]])
    by_user = np.argsort(user, kind="stable")
    return user[by_user], movie[by_user]


def _distinct_up_to(
    rng: np.random.Generator, user: np.ndarray, movie: np.ndarray, counts: np.ndarray, kept: int, n_movies: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, movie) pairs, at most ``counts[u]`` per user: the first ``kept`` pairs (distinct,
    chosen before) all stay, and each user's new ones fill the rest in random order."""
    _, first = np.unique(user * n_movies + movie, return_index=True)  # the first of each pair: a kept one
    # One integer sort key: the user, then 0 for a kept pair and a random tie-breaker for a new one.
    tie = np.where(first < kept, 0, rng.integers(1, 1 << 31, len(first)))
    first = first[np.argsort((user[first] << 31) | tie)]
    u = user[first]
    group_start = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=len(counts)))[:-1]])
    keep = first[np.arange(len(u)) - group_start[u] < counts[u]]  # each pair's place among its user's
    return user[keep], movie[keep]


def _titles(rng: np.random.Generator, genres: np.ndarray) -> np.ndarray:
    """Two title words per movie; a repeated title gets a sequel number, so titles are unique."""
    words = np.array(_TITLE_WORDS)
    base = (
        pd.Series(words[rng.integers(0, len(words), len(genres))])
        + " "
        + words[rng.integers(0, len(words), len(genres))]
    )
    sequel = base.groupby(base).cumcount()
    return np.where(sequel > 0, base + " " + (sequel + 1).astype(str), base).astype(str)


def _timestamps(rng: np.random.Generator, user: np.ndarray, n_users: int) -> np.ndarray:
    """Each user starts somewhere in ML-1M's span and rates over the following weeks (a few keep going)."""
    span = LAST_RATING - FIRST_RATING
    start = FIRST_RATING + rng.random(n_users) * span * 0.9
    offset = rng.exponential(30 * 86_400, len(user)) * np.where(rng.random(len(user)) < 0.1, 10, 1)
    return np.minimum(start[user] + offset, LAST_RATING).astype(np.int64)


def ml1m_members(data: SyntheticData) -> dict[str, bytes]:
    """The ML-1M layout (``::``-separated, latin-1): users.dat, movies.dat, ratings.dat sorted by user and time."""
    users = pd.DataFrame(
        {
            "id": np.arange(1, data.shape.users + 1),
            "gender": data.gender,
            "age": np.asarray(AGES)[data.age_group],
            "occupation": data.occupation,
            "zip": data.zip_code,
        }
    )
    genre_names = np.asarray(GENRES)
    movies = pd.DataFrame(
        {
            "id": np.arange(1, data.shape.movies + 1),
            "title": [f"{t} ({y})" for t, y in zip(data.titles, data.year, strict=True)],
            "genres": ["|".join(genre_names[row]) for row in data.genres],
        }
    )
    order = np.lexsort((data.timestamp, data.user))
    ratings = pd.DataFrame(
        {
            "user": data.user[order] + 1,
            "movie": data.movie[order] + 1,
            "rating": data.ratings_on(STARS)[order].astype(np.int64),
            "timestamp": data.timestamp[order],
        }
    )
    return {
        name: _dat(frame) for name, frame in (("users.dat", users), ("movies.dat", movies), ("ratings.dat", ratings))
    }


def _dat(frame: pd.DataFrame) -> bytes:
    """``::``-separated lines (pandas writes one-character separators; no field holds a tab)."""
    text = frame.to_csv(sep="\t", header=False, index=False, lineterminator="\n")
    return text.replace("\t", "::").encode("latin-1")


def csv_members(data: SyntheticData) -> dict[str, bytes]:
    """The MovieLens CSV layout (ml-latest-small, 25M, 32M): half stars, no demographics, UTF-8."""
    genre_names = np.asarray(GENRES)
    movies = pd.DataFrame(
        {
            "movieId": np.arange(1, data.shape.movies + 1),
            "title": [f"{t} ({y})" for t, y in zip(data.titles, data.year, strict=True)],
            "genres": ["|".join(genre_names[row]) for row in data.genres],
        }
    )
    order = np.lexsort((data.movie, data.user))  # the releases sort by user, then movie
    ratings = pd.DataFrame(
        {
            "userId": data.user[order] + 1,
            "movieId": data.movie[order] + 1,
            "rating": data.ratings_on(HALF_STARS)[order],
            "timestamp": data.timestamp[order],
        }
    )
    return {
        "movies.csv": _csv(movies),
        "ratings.csv": _csv(ratings, float_format="%.1f"),
    }


def _csv(frame: pd.DataFrame, **options: str) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n", **options)
    return buffer.getvalue().encode("utf-8")
