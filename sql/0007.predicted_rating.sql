-- Two numbers per user x movie pair from now on. `score` is the *ranking score*: what
-- orders the user's list (rank 1 = the highest score among the unseen movies, ties by the
-- lower movie id), from a list head trained for top-N; any finite real number, not a
-- rating. `predicted_rating` is the predicted rating (1-5). Until now `score` was the
-- predicted rating and there was no second column.
-- depends: 0006.narrow_ranked_scores

-- Nullable on purpose: the rows already written (the run that is published while this
-- migration runs, and any kept older run) have no rating; their `score` is the predicted
-- rating itself. The next precompute run writes both columns and replaces them.
ALTER TABLE recsys.ranked_scores ADD COLUMN predicted_rating real;

-- A run still being written has its own table, not attached yet (it was created LIKE the
-- old ranked_scores); give it the column too, so it can still be attached and published
-- (with NULL ratings, like the published run) instead of failing at attach time.
DO $$
DECLARE
    run record;
BEGIN
    FOR run IN
        SELECT r.run_id FROM recsys.precompute_runs r
        WHERE r.status = 'running' AND to_regclass('recsys.ranked_scores_r' || r.run_id) IS NOT NULL
    LOOP
        EXECUTE format('ALTER TABLE recsys.%I ADD COLUMN IF NOT EXISTS predicted_rating real',
                       'ranked_scores_r' || run.run_id);
    END LOOP;
END
$$;

-- Stored rerank answers: NULL for answers stored before this migration.
ALTER TABLE recsys.rerank_results ADD COLUMN predicted_rating real;

-- The views keep every column in its order and append the new one (CREATE OR REPLACE may
-- only append), so existing queries and `SELECT *` readers see what they saw before.
CREATE OR REPLACE VIEW recsys.current_ranked_scores AS
SELECT s.user_id, s.movie_id, s.score, s.rank, s.seen,
       (SELECT model_version FROM recsys.published_ranking) AS model_version, s.run_id,
       s.predicted_rating
FROM recsys.ranked_scores s
WHERE s.run_id = (SELECT run_id FROM recsys.published_ranking);

CREATE OR REPLACE VIEW recsys.top_recommendations AS
SELECT s.user_id, s.rank, s.movie_id, m.title, m.genres, s.score, s.model_version, s.run_id, p.published_at,
       s.predicted_rating
FROM recsys.current_ranked_scores s
JOIN recsys.published_ranking p ON p.run_id = s.run_id
JOIN recsys.movies m ON m.movie_id = s.movie_id
WHERE s.rank IS NOT NULL;

COMMENT ON VIEW recsys.top_recommendations IS
    'Unseen movies per user in rank order (1 = best, the highest ranking score) from the published ranking run only.';

COMMENT ON COLUMN recsys.ranked_scores.score IS
    'Ranking score: orders the user''s list (rank 1 = highest among unseen movies; ties by lower movie id). '
    'Any finite real number from the list head, not a rating; only its order means something. '
    'In runs published before migration 0007 it is the predicted rating.';
COMMENT ON COLUMN recsys.ranked_scores.predicted_rating IS
    'Predicted rating (1-5) of the user for the movie; does not order the list. '
    'NULL in runs published before migration 0007 (their score is the predicted rating).';
COMMENT ON COLUMN recsys.ranked_scores.rank IS
    '1..n among the movies the user has not rated, by score (highest first, ties by lower movie id); NULL when seen.';

COMMENT ON COLUMN recsys.current_ranked_scores.score IS
    'Ranking score: orders the user''s list, higher first; not a rating (any finite real number).';
COMMENT ON COLUMN recsys.current_ranked_scores.predicted_rating IS
    'Predicted rating (1-5); NULL for a run published before migration 0007 (whose score is the rating).';
COMMENT ON COLUMN recsys.top_recommendations.score IS
    'Ranking score: orders the user''s list, higher first; not a rating (any finite real number).';
COMMENT ON COLUMN recsys.top_recommendations.predicted_rating IS
    'Predicted rating (1-5); NULL for a run published before migration 0007 (whose score is the rating).';

COMMENT ON COLUMN recsys.rerank_results.score IS
    'Ranking score of the movie in the published run: what ordered the answer, higher first; not a rating '
    '(before migration 0007 it was the predicted rating).';
COMMENT ON COLUMN recsys.rerank_results.predicted_rating IS
    'Predicted rating (1-5) from the published run; NULL if that run had none or the answer predates migration 0007.';

-- Views get their grants again, as 0006 does (0004 created the roles, if it could).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recsys_reader') THEN
        GRANT SELECT ON recsys.current_ranked_scores, recsys.top_recommendations TO recsys_reader;
    END IF;
END
$$;
