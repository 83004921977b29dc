-- The rerank DAG's stored answers: recsys.rerank_requests (one row per Airflow run) and
-- recsys.rerank_results (one row per ranked movie). Owned by recsys/scoring/rerank_results.py;
-- nothing else touches these tables.

-- name: delete_request(dag_id, airflow_run_id)!
-- A retried task replaces its own answer; its results go with it (ON DELETE CASCADE).
DELETE FROM recsys.rerank_requests WHERE dag_id = :dag_id AND airflow_run_id = :airflow_run_id;

-- name: insert_request(dag_id, airflow_run_id, user_id, k, candidates, precompute_run_id, model_version, unknown_titles, ambiguous_titles, unknown_movie_ids, unscored_movie_ids)$
-- The request as validated, where its scores came from, and what could not be ranked;
-- returns its request_id. candidates and ambiguous_titles arrive as JSON text.
INSERT INTO recsys.rerank_requests (dag_id, airflow_run_id, user_id, k, candidates, precompute_run_id, model_version,
                                    unknown_titles, ambiguous_titles, unknown_movie_ids, unscored_movie_ids)
VALUES (:dag_id, :airflow_run_id, :user_id, :k, CAST(:candidates AS jsonb), :precompute_run_id, :model_version,
        :unknown_titles, CAST(:ambiguous_titles AS jsonb), :unknown_movie_ids, :unscored_movie_ids)
RETURNING request_id;

-- name: insert_results(request_id, position, movie_id, title, score, rank, seen, predicted_rating)*!
-- One row per ranked movie, position 1 = best (executemany over the rows).
INSERT INTO recsys.rerank_results (request_id, position, movie_id, title, score, rank, seen, predicted_rating)
VALUES (:request_id, :position, :movie_id, :title, :score, :rank, :seen, :predicted_rating);
