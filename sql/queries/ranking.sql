-- The ranking runs and their publication: recsys.precompute_runs, recsys.ranked_scores,
-- recsys.published_ranking and the views current_ranked_scores / top_recommendations.
-- Owned by recsys/scoring/{runs,partitions,retention,checks}.py; nothing else touches these
-- tables. Statements that name one run's own tables (recsys.ranked_scores_r<run>, its
-- leaves ..._s<shard>) are composed in those modules: an identifier cannot be a parameter.

-- ------------------------------------------------------------------ runs (runs.py)

-- name: insert_run(model_version, shards)$
-- A new run, with the feature store's size at its start; returns its run_id.
INSERT INTO recsys.precompute_runs (model_version, shards, users, movies)
VALUES (:model_version, :shards, (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies))
RETURNING run_id;

-- name: abandon_older_runs(run_id)!
-- The newest run wins: an older run still running was killed or lost the race.
UPDATE recsys.precompute_runs SET status = 'failed', finished_at = now(),
       error = 'abandoned: run ' || :run_id || ' started before it finished'
WHERE status = 'running' AND run_id < :run_id;

-- name: run_info(run_id)^
-- The columns of runs.Run, in its order.
SELECT run_id, model_version, status, shards, shards_done, users, movies, rows,
       started_at, finished_at, published_at, error
FROM recsys.precompute_runs WHERE run_id = :run_id;

-- name: record_shard_done(run_id, shard)!
-- Adds the shard to shards_done once, sorted.
UPDATE recsys.precompute_runs
SET shards_done = (SELECT array_agg(DISTINCT s ORDER BY s) FROM unnest(array_append(shards_done, :shard)) s)
WHERE run_id = :run_id;

-- name: fail_run(run_id, error)!
UPDATE recsys.precompute_runs SET status = 'failed', error = :error, finished_at = now()
WHERE run_id = :run_id AND status = 'running';

-- name: is_attached(table_name)$
-- Whether the table (a run table, by name) is a partition of recsys.ranked_scores.
SELECT EXISTS (
    SELECT 1 FROM pg_inherits
    WHERE inhparent = 'recsys.ranked_scores'::regclass AND inhrelid = to_regclass(:table_name)
);

-- name: run_bytes(table_name)$
-- Bytes on disk of a run table (by name): its leaves with their indexes and TOAST; 0 when gone.
SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
FROM pg_partition_tree(to_regclass(:table_name));

-- name: published_run()
-- The status page: what is published, with its run.
SELECT p.run_id, p.model_version, p.published_at, r.rows, r.users, r.movies, r.shards
FROM recsys.published_ranking p JOIN recsys.precompute_runs r USING (run_id);

-- name: recent_runs(limit)
-- The status page: the newest runs first.
SELECT run_id, model_version, status, shards, cardinality(shards_done) AS shards_done, rows,
       started_at, finished_at, left(error, 300) AS error
FROM recsys.precompute_runs
ORDER BY run_id DESC LIMIT :limit;

-- ------------------------------------------------------------------ publish (partitions.py)

-- name: lock_publishing(lock_id)!
-- Serialises publishes (session level: held across the two transactions).
SELECT pg_advisory_lock(:lock_id);

-- name: unlock_publishing(lock_id)!
SELECT pg_advisory_unlock(:lock_id);

-- name: clock()$
SELECT clock_timestamp();

-- name: lock_run(run_id)^
-- The run, locked until the transaction ends; the columns of runs.Run, in its order.
SELECT run_id, model_version, status, shards, shards_done, users, movies, rows,
       started_at, finished_at, published_at, error
FROM recsys.precompute_runs WHERE run_id = :run_id FOR UPDATE;

-- name: newer_published_run(run_id)$
SELECT run_id FROM recsys.published_ranking WHERE run_id > :run_id;

-- name: queries_started_before(moment)$
-- Queries of this database still running that started before the moment (not this session).
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid() AND query_start < :moment;

-- name: supersede_published()!
UPDATE recsys.precompute_runs SET status = 'superseded'
WHERE run_id = (SELECT run_id FROM recsys.published_ranking);

-- name: point_to(run_id, model_version)!
-- Moves the published_ranking pointer (a single row) to the run.
INSERT INTO recsys.published_ranking (run_id, model_version, published_at)
VALUES (:run_id, :model_version, now())
ON CONFLICT (singleton) DO UPDATE
SET run_id = EXCLUDED.run_id, model_version = EXCLUDED.model_version, published_at = EXCLUDED.published_at;

-- name: mark_published(run_id, rows)!
UPDATE recsys.precompute_runs SET status = 'published', rows = :rows, finished_at = now(), published_at = now()
WHERE run_id = :run_id;

-- ------------------------------------------------------------------ checks (checks.py)

-- name: published_stats(low, high)^
-- What readers see through the views: the published run, its rows, the rows with a NaN or
-- infinite ranking score, those with a NaN predicted rating or one outside [low, high]
-- (NULL, for a run published before migration 0007, passes), and users x movies.
SELECT (SELECT run_id FROM recsys.published_ranking) AS run_id, count(*) AS rows,
       count(*) FILTER (WHERE score IN ('NaN', 'Infinity', '-Infinity')) AS bad_scores,
       count(*) FILTER (WHERE predicted_rating = 'NaN' OR predicted_rating < :low
                        OR predicted_rating > :high) AS bad_ratings,
       (SELECT count(*) FROM recsys.users) * (SELECT count(*) FROM recsys.movies) AS expected
FROM recsys.current_ranked_scores;

-- name: published_rank_gaps()$
-- Users of the published run whose unseen movies are not ranked 1..n, each rank once.
SELECT count(*) FROM (
    SELECT user_id FROM recsys.current_ranked_scores
    WHERE NOT seen GROUP BY user_id
    HAVING min(rank) <> 1 OR max(rank) <> count(*) OR count(DISTINCT rank) <> count(*)
) g;

-- ------------------------------------------------------------------ retention (retention.py)

-- name: doomed_runs(keep)
-- Runs whose tables go: failed ones, and superseded ones older than the keep newest.
SELECT run_id FROM (
    SELECT run_id FROM recsys.precompute_runs WHERE status = 'failed'
    UNION
    SELECT run_id FROM (
        SELECT run_id FROM recsys.precompute_runs WHERE status = 'superseded' ORDER BY run_id DESC OFFSET :keep
    ) old
) r
WHERE to_regclass('recsys.ranked_scores_r' || run_id) IS NOT NULL;

-- name: attached_tables()
-- The table names of the partitions of recsys.ranked_scores.
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'recsys.ranked_scores'::regclass;

-- name: superseded_runs()
SELECT run_id FROM recsys.precompute_runs WHERE status = 'superseded';

-- name: mark_dropped(run_ids)!
UPDATE recsys.precompute_runs SET status = 'dropped' WHERE run_id = ANY(:run_ids) AND status = 'superseded';
