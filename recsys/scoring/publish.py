"""Write a ranking run shard by shard, then publish it atomically.

A run owns a partitioned table ``recsys.ranked_scores_r<run>`` that is *not* attached to
``recsys.ranked_scores`` while it is being filled, so readers cannot see it. Each shard
(users with ``user_id % shards == shard``) is one leaf table, replaced whole by its own
transaction: create, COPY, index, check, attach to the run's table. Re-running a shard
replaces its leaf, so shards are idempotent and retryable on any worker.

Publishing attaches the run's table to ``recsys.ranked_scores``, waits for queries that
started before, then moves the ``recsys.published_ranking`` pointer (``publish_run`` says
why in two steps). Readers select through the pointer in the same statement as the
scores, so each query sees one complete ranking. A run that fails at any point never
moves the pointer: the previous ranking stays published.

Each pair carries two numbers: ``score``, the ranking score (any finite real; the model's
list head; ``rank`` orders by it), and ``predicted_rating`` (1-5). Only ``score`` orders.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys.errors import RecsysError
from recsys.scoring import copy_binary

log = logging.getLogger(__name__)

PUBLISH_LOCK_ID = 7_300_002  # serialises publishes and cleanups
PLAN_GRACE_S = 5.0  # longest wait for in-flight queries between attach and pointer move
RATING_RANGE = (1.0, 5.0)  # a predicted rating outside it is a broken model (scores have no range)
READBACK_SAMPLE = 64  # rows per shard read back from the table and compared with what was ranked


class PublishError(RecsysError):
    """A run cannot be written or published; the published ranking is unchanged."""


@dataclass(frozen=True)
class PublishedRun:
    run_id: int
    model_version: str
    rows: int
    users: int
    movies: int


def run_table(run_id: int) -> str:
    return f"recsys.ranked_scores_r{int(run_id)}"


def shard_table(run_id: int, shard: int) -> str:
    return f"recsys.ranked_scores_r{int(run_id)}_s{int(shard)}"


def champion_version(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        version = conn.execute(
            sa.text("SELECT version_id FROM recsys.model_versions WHERE status = 'champion'")
        ).scalar()
    if version is None:
        raise PublishError("no champion model in recsys.model_versions; run `recsys train` first")
    return version


def start_run(engine: sa.Engine, model_version: str | None, shards: int) -> int:
    """Record a new run (for ``model_version``, default the champion) and create its table."""
    if shards < 1:
        raise PublishError(f"shards must be at least 1, got {shards}")
    model_version = model_version or champion_version(engine)
    with engine.begin() as conn:
        known = conn.execute(
            sa.text("SELECT 1 FROM recsys.model_versions WHERE version_id = :v"), {"v": model_version}
        ).first()
        if known is None:
            raise PublishError(f"unknown model version {model_version!r}")
        run_id = conn.execute(
            sa.text(
                "INSERT INTO recsys.precompute_runs (model_version, shards, users, movies) "
                "VALUES (:v, :shards, (SELECT count(*) FROM recsys.users), "
                "(SELECT count(*) FROM recsys.movies)) RETURNING run_id"
            ),
            {"v": model_version, "shards": shards},
        ).scalar_one()
        conn.execute(sa.text(f"CREATE TABLE {run_table(run_id)} (LIKE recsys.ranked_scores) PARTITION BY LIST (shard)"))
        # The newest run wins: an older run still 'running' was killed or lost the race, and
        # can no longer publish; `cleanup` drops its tables.
        conn.execute(
            sa.text(
                "UPDATE recsys.precompute_runs SET status = 'failed', finished_at = now(), "
                "error = 'abandoned: run ' || :r || ' started before it finished' "
                "WHERE status = 'running' AND run_id < :r"
            ),
            {"r": run_id},
        )
    log.info("started precompute run %d for model %s with %d shard(s)", run_id, model_version, shards)
    return run_id


def run_info(engine: sa.Engine, run_id: int) -> sa.Row:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM recsys.precompute_runs WHERE run_id = :r"), {"r": run_id}).first()
    if row is None:
        raise PublishError(f"unknown precompute run {run_id}")
    return row


def shard_users(user_ids: np.ndarray, shard: int, shards: int) -> np.ndarray:
    return user_ids[user_ids % shards == shard]


def write_shard(
    engine: sa.Engine,
    run_id: int,
    shard: int,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    scores: np.ndarray,
    ratings: np.ndarray,
) -> int:
    """Replace the shard's leaf with the pairs (user_ids[i], movie_ids[j]).

    ``scores[i, j]`` is the pair's ranking score (any finite real, higher = earlier in the
    user's list; the ranks follow it) and ``ratings[i, j]`` its predicted rating (within
    ``RATING_RANGE``). Both are stored as float32 (``real``), and the ranks are computed
    from the float32 scores, so the stored scores order exactly as the stored ranks do.
    """
    run = run_info(engine, run_id)
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
        scores, ratings = np.asarray(scores, dtype=np.float32), np.asarray(ratings, dtype=np.float32)
    _check_shard_input(run, shard, user_ids, movie_ids, scores, ratings)
    with engine.begin() as conn:
        seen = _seen_mask(conn, user_ids, movie_ids)
        ranks, order = _ranks(scores, seen)
        payload = _encode(user_ids, movie_ids, scores, ratings, ranks, order)
        table = shard_table(run_id, shard)
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (LIKE recsys.ranked_scores INCLUDING ALL, "
                f"CHECK (run_id = {int(run_id)} AND shard = {int(shard)}))"
            )
        )
        # Constant columns come from defaults: the COPY stream carries only what varies.
        conn.execute(
            sa.text(f"ALTER TABLE {table} ALTER run_id SET DEFAULT {int(run_id)}, ALTER shard SET DEFAULT {int(shard)}")
        )
        columns = "user_id, movie_id, score, rank, seen, predicted_rating"
        cursor = conn.connection.cursor()
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT binary, FREEZE)") as copy:
            view, chunk = memoryview(payload), 8 << 20
            for start in range(0, len(view), chunk):
                copy.write(view[start : start + chunk])
        if cursor.rowcount != scores.size:
            raise PublishError(f"shard {shard}: COPY stored {cursor.rowcount} rows of {scores.size}")
        # Unique: a user's ranks can never repeat, checked by the index build itself.
        conn.execute(sa.text(f"CREATE UNIQUE INDEX ON {table} (user_id, rank)"))
        _check_leaf(conn, table, shard, user_ids, movie_ids, scores, ratings, ranks, order, seed=run_id * 1000 + shard)
        conn.execute(sa.text(f"ANALYZE {table}"))
        conn.execute(sa.text(f"ALTER TABLE {run_table(run_id)} ATTACH PARTITION {table} FOR VALUES IN ({shard})"))
        conn.execute(
            sa.text(
                "UPDATE recsys.precompute_runs SET shards_done = "
                "(SELECT array_agg(DISTINCT s ORDER BY s) FROM unnest(array_append(shards_done, :shard)) s) "
                "WHERE run_id = :run"
            ),
            {"shard": shard, "run": run_id},
        )
    rows = scores.size
    log.info("run %d shard %d: wrote %d rows for %d users", run_id, shard, rows, len(user_ids))
    return rows


def publish_run(engine: sa.Engine, run_id: int) -> PublishedRun:
    """Make the run the published ranking if it is complete.

    Two transactions, on purpose. PostgreSQL plans a query with the partitions committed
    when planning starts, but takes the snapshot that reads ``published_ranking`` after
    planning; attaching the partition and moving the pointer in one commit would let a
    query planned just before that commit read the new pointer without the new partition,
    and answer with nothing. So: attach (readers still follow the old pointer), wait until
    every query that started before the attach has finished, then move the pointer.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        lock.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": PUBLISH_LOCK_ID})
        try:
            with engine.begin() as conn:
                run = _publishable(conn, run_id)
                rows = _check_complete(conn, run)
                if not _is_attached(conn, run_id):
                    conn.execute(
                        sa.text(
                            f"ALTER TABLE recsys.ranked_scores ATTACH PARTITION {run_table(run_id)} "
                            f"FOR VALUES IN ({run_id})"
                        )
                    )
            attached_at = lock.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
            _wait_for_queries_started_before(lock, attached_at)
            with engine.begin() as conn:
                run = _publishable(conn, run_id)
                _move_pointer(conn, run, rows)
        finally:
            lock.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": PUBLISH_LOCK_ID})
    log.info("published run %d (%d rows, model %s)", run_id, rows, run.model_version)
    return PublishedRun(run_id, run.model_version, rows, run.users, run.movies)


def _publishable(conn: sa.Connection, run_id: int) -> sa.Row:
    """The run, locked, if it is complete and newer than what is published."""
    run = conn.execute(
        sa.text("SELECT * FROM recsys.precompute_runs WHERE run_id = :r FOR UPDATE"), {"r": run_id}
    ).first()
    if run is None or run.status != "running":
        raise PublishError(f"run {run_id} cannot be published (status {run.status if run else 'unknown'})")
    missing = sorted(set(range(run.shards)) - set(run.shards_done))
    if missing:
        raise PublishError(f"run {run_id} is incomplete: shard(s) {missing} not written")
    newer = conn.execute(
        sa.text("SELECT run_id FROM recsys.published_ranking WHERE run_id > :r"), {"r": run_id}
    ).scalar()
    if newer is not None:
        raise PublishError(f"run {run_id} is older than the published run {newer}; not publishing")
    return run


def _is_attached(conn: sa.Connection, run_id: int) -> bool:
    return bool(
        conn.execute(
            sa.text(
                "SELECT 1 FROM pg_inherits WHERE inhparent = 'recsys.ranked_scores'::regclass "
                "AND inhrelid = to_regclass(:t)"
            ),
            {"t": run_table(run_id)},
        ).first()
    )


def _wait_for_queries_started_before(conn: sa.Connection, moment, timeout_s: float = PLAN_GRACE_S) -> None:
    """Let queries that may have been planned without the new partition finish first.

    A query that is still running after ``timeout_s`` took its snapshot long before the
    pointer moves, so it reads the old pointer and is safe either way.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND pid <> pg_backend_pid() AND query_start < :moment"
            ),
            {"moment": moment},
        ).scalar_one()
        if not waiting:
            return
        time.sleep(0.01)


def _move_pointer(conn: sa.Connection, run: sa.Row, rows: int) -> None:
    conn.execute(
        sa.text(
            "UPDATE recsys.precompute_runs SET status = 'superseded' "
            "WHERE run_id = (SELECT run_id FROM recsys.published_ranking)"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO recsys.published_ranking (run_id, model_version, published_at) "
            "VALUES (:r, :v, now()) ON CONFLICT (singleton) DO UPDATE "
            "SET run_id = EXCLUDED.run_id, model_version = EXCLUDED.model_version, "
            "published_at = EXCLUDED.published_at"
        ),
        {"r": run.run_id, "v": run.model_version},
    )
    conn.execute(
        sa.text(
            "UPDATE recsys.precompute_runs SET status = 'published', rows = :rows, "
            "finished_at = now(), published_at = now() WHERE run_id = :r"
        ),
        {"rows": rows, "r": run.run_id},
    )


def fail_run(engine: sa.Engine, run_id: int, error: str) -> None:
    """Record the failure and drop the run's tables; the published ranking is untouched."""
    with engine.begin() as conn:
        updated = conn.execute(
            sa.text(
                "UPDATE recsys.precompute_runs SET status = 'failed', error = :e, finished_at = now() "
                "WHERE run_id = :r AND status = 'running'"
            ),
            {"e": error[:4000], "r": run_id},
        ).rowcount
        attached = _is_attached(conn, run_id)
    if updated:
        _drop_run_table(engine, run_id, attached=attached)
    log.warning("precompute run %d failed: %s", run_id, error)


def cleanup(engine: sa.Engine, keep: int = 2) -> list[int]:
    """Detach superseded runs; drop failed runs and all but the ``keep`` newest superseded ones.

    Only the published run stays attached to ``recsys.ranked_scores``. Readers never reach
    a superseded run (they follow the pointer), but every attached leaf costs each lookup:
    a generic plan locks all partitions before pruning them, and with three runs of eight
    shards attached the API's top-10 lookup cost PostgreSQL 555 us of CPU against 253 us
    with one (1,609 against 2,802 req/s, p99 18.9 against 6.6 ms at 8 clients). Kept runs
    stay as tables of their own (``recsys.ranked_scores_r<run>``) for analysis. Partitions
    are detached CONCURRENTLY (no lock that blocks readers, and it waits for queries that
    may still read them).
    """
    if keep < 0:
        raise PublishError(f"keep must be >= 0, got {keep}")
    with engine.begin() as conn:
        doomed = (
            conn.execute(
                sa.text(
                    "SELECT run_id FROM (SELECT run_id FROM recsys.precompute_runs WHERE status = 'failed' "
                    "UNION SELECT run_id FROM (SELECT run_id FROM recsys.precompute_runs "
                    "WHERE status = 'superseded' ORDER BY run_id DESC OFFSET :keep) old) r "
                    "WHERE to_regclass('recsys.ranked_scores_r' || run_id) IS NOT NULL"
                ),
                {"keep": keep},
            )
            .scalars()
            .all()
        )
        attached = set(
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'recsys.ranked_scores'::regclass"
                )
            ).scalars()
        )
        superseded = conn.execute(
            sa.text("SELECT run_id FROM recsys.precompute_runs WHERE status = 'superseded'")
        ).scalars()
        retired = sorted(r for r in superseded if f"ranked_scores_r{r}" in attached and r not in doomed)
    for run_id in retired:
        _detach_run_table(engine, run_id)
    dropped = []
    for run_id in sorted(doomed):
        _drop_run_table(engine, run_id, attached=f"ranked_scores_r{run_id}" in attached)
        dropped.append(run_id)
    if dropped:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE recsys.precompute_runs SET status = 'dropped' "
                    "WHERE run_id = ANY(:ids) AND status = 'superseded'"
                ),
                {"ids": dropped},
            )
    return dropped


def publish_scores(engine: sa.Engine, model_version: str, frame: pd.DataFrame, shards: int = 1) -> int:
    """Publish a full ranking given as a long frame, for tests and tools.

    Columns user_id, movie_id, score (the ranking score) and optionally predicted_rating;
    without it the rating is the score itself, which is what a rating-only model means
    (it ranks by its predicted rating).
    """
    matrix = frame.pivot(index="user_id", columns="movie_id", values="score").sort_index().sort_index(axis=1)
    if matrix.isna().to_numpy().any():
        raise PublishError("scores must cover every user x movie pair")
    user_ids, movie_ids = matrix.index.to_numpy(np.int64), matrix.columns.to_numpy(np.int64)
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, which write_shard refuses
        values = matrix.to_numpy(np.float32)
        if "predicted_rating" in frame.columns:
            rated = frame.pivot(index="user_id", columns="movie_id", values="predicted_rating")
            # a missing rating becomes NaN here, which write_shard refuses too
            ratings = rated.reindex(index=matrix.index, columns=matrix.columns).to_numpy(np.float32)
        else:
            ratings = values
    run_id = start_run(engine, model_version, shards)
    try:
        for shard in range(shards):
            mask = user_ids % shards == shard
            write_shard(engine, run_id, shard, user_ids[mask], movie_ids, values[mask], ratings[mask])
        publish_run(engine, run_id)
    except Exception as exc:
        fail_run(engine, run_id, str(exc))
        raise
    return run_id


def _drop_run_table(engine: sa.Engine, run_id: int, *, attached: bool) -> None:
    if attached:
        _detach_run_table(engine, run_id)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {run_table(run_id)}"))
    log.info("dropped the tables of precompute run %d", run_id)


def _detach_run_table(engine: sa.Engine, run_id: int) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"ALTER TABLE recsys.ranked_scores DETACH PARTITION {run_table(run_id)} CONCURRENTLY"))


def _check_shard_input(
    run: sa.Row, shard: int, user_ids: np.ndarray, movie_ids: np.ndarray, scores: np.ndarray, ratings: np.ndarray
) -> None:
    if run.status != "running":
        raise PublishError(f"run {run.run_id} is {run.status}; shards can only be written while it runs")
    if not 0 <= shard < run.shards:
        raise PublishError(f"shard {shard} is outside 0..{run.shards - 1}")
    if scores.shape != (len(user_ids), len(movie_ids)):
        raise PublishError(f"scores shape {scores.shape} != ({len(user_ids)}, {len(movie_ids)})")
    if ratings.shape != scores.shape:
        raise PublishError(f"ratings shape {ratings.shape} != scores shape {scores.shape}")
    if np.any(user_ids % run.shards != shard):
        raise PublishError(f"shard {shard} was given users of other shards")
    if not np.isfinite(scores).all():
        raise PublishError(f"shard {shard}: the model produced NaN or infinite scores")
    if not np.isfinite(ratings).all():
        raise PublishError(f"shard {shard}: the model produced NaN or infinite predicted ratings")
    low, high = RATING_RANGE
    if ratings.size and (ratings.min() < low or ratings.max() > high):
        raise PublishError(
            f"shard {shard}: predicted ratings outside [{low}, {high}] ({ratings.min()}..{ratings.max()})"
        )


def _seen_mask(conn: sa.Connection, user_ids: np.ndarray, movie_ids: np.ndarray) -> np.ndarray:
    rated = pd.read_sql(
        sa.text("SELECT user_id, movie_id FROM recsys.ratings WHERE user_id = ANY(:u)"),
        conn,
        params={"u": user_ids.tolist()},
    )
    seen = np.zeros((len(user_ids), len(movie_ids)), dtype=bool)
    rows = np.searchsorted(user_ids, rated["user_id"].to_numpy())
    cols = np.searchsorted(movie_ids, rated["movie_id"].to_numpy())
    valid = (rows < len(user_ids)) & (cols < len(movie_ids))
    rows, cols = rows[valid], cols[valid]
    hit = (user_ids[rows] == rated["user_id"].to_numpy()[valid]) & (
        movie_ids[cols] == rated["movie_id"].to_numpy()[valid]
    )
    seen[rows[hit], cols[hit]] = True
    return seen


def _ranks(scores: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank among unseen movies by score, ties broken by the lower movie id; 0 = seen.

    ``movie_ids`` are sorted ascending, so a stable sort on the negated score breaks ties
    by movie id deterministically. Also returns that sort order (per user: unseen movies
    by rank, then seen movies), which is the order the rows are written in.
    """
    keyed = np.where(seen, np.inf, -scores.astype(np.float64))
    order = np.argsort(keyed, axis=1, kind="stable")
    ranks = np.empty_like(order, dtype=np.int32)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1, dtype=np.int32)[None, :], axis=1)
    return np.where(seen, 0, ranks), order


def _encode(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    scores: np.ndarray,
    ratings: np.ndarray,
    ranks: np.ndarray,
    order: np.ndarray,
) -> bytes:
    """Rows sorted by (user, rank), seen movies last, so each user's top-k sits in a few pages.

    Columns in the order of the COPY column list: user_id, movie_id, score, rank, seen,
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


def _check_leaf(
    conn: sa.Connection,
    table: str,
    shard: int,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    scores: np.ndarray,
    ratings: np.ndarray,
    ranks: np.ndarray,
    order: np.ndarray,
    seed: int,
) -> None:
    """What a reader relies on, checked on the shard's leaf before it is attached.

    The ranks were made contiguous per user by construction (``_ranks``) and are checked
    here again in numpy; the leaf holds exactly the rows sent (COPY's own count, checked
    by the caller) and no user has a rank twice (the unique index). Then a random sample
    of rows is read back the way readers look them up, by (user, rank), and must carry the
    movie, score, flag and predicted rating that were ranked there: what goes wrong
    between numpy and the table (encoding, ordering, a column swapped) shows up as a wrong
    row. This replaced an aggregate scan of every row (40-70 ms per 200k-row shard, about
    a tenth of the job's CPU) that checked counts but could not see a movie in the wrong
    place.
    """
    unseen = (ranks > 0).sum(axis=1)
    if np.any(ranks.max(axis=1, initial=0) != unseen) or np.any(ranks.min(axis=1, where=ranks > 0, initial=1) != 1):
        raise PublishError(f"shard {shard}: ranks are not 1..n over each user's unseen movies")
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(unseen)
    if not len(candidates):
        return
    rows = rng.choice(candidates, READBACK_SAMPLE)
    rank = (rng.random(READBACK_SAMPLE) * unseen[rows]).astype(np.int64) + 1
    cols = order[rows, rank - 1]
    found = conn.execute(
        sa.text(
            f"SELECT t.user_id, t.rank, t.movie_id, t.score, t.seen, t.predicted_rating FROM {table} t "
            f"JOIN unnest(CAST(:users AS int[]), CAST(:ranks AS int[])) AS q(user_id, rank) USING (user_id, rank)"
        ),
        {"users": user_ids[rows].tolist(), "ranks": rank.tolist()},
    ).all()
    # real arrives as its shortest decimal text: compare as float32, the stored precision
    stored = {
        (r.user_id, r.rank): (
            r.movie_id,
            np.float32(r.score),
            r.seen,
            None if r.predicted_rating is None else np.float32(r.predicted_rating),
        )
        for r in found
    }
    for row, r, col in zip(rows.tolist(), rank.tolist(), cols.tolist(), strict=True):
        expected = (int(movie_ids[col]), np.float32(scores[row, col]), False, np.float32(ratings[row, col]))
        if stored.get((int(user_ids[row]), r)) != expected:
            raise PublishError(
                f"shard {shard}: user {user_ids[row]} rank {r} reads back as "
                f"{stored.get((int(user_ids[row]), r))}, expected (movie, score, seen, predicted_rating) {expected}"
            )


def _check_complete(conn: sa.Connection, run: sa.Row) -> int:
    """Every shard was checked when written; here only that they add up to every user x movie."""
    table = run_table(run.run_id)
    stats = conn.execute(
        sa.text(
            f"SELECT (SELECT count(*) FROM {table}) AS rows, (SELECT count(*) FROM recsys.users) AS all_users, "
            f"(SELECT count(*) FROM recsys.movies) AS all_movies"
        )
    ).one()
    expected = stats.all_users * stats.all_movies
    if stats.rows != expected:
        raise PublishError(
            f"run {run.run_id} has {stats.rows} rows; expected {expected} "
            f"({stats.all_users} users x {stats.all_movies} movies)"
        )
    return stats.rows
