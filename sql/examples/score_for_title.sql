-- A user's ranking score, predicted rating and rank for every movie with a given title
-- (titles are not unique: 'Chasing Amy (1997)' is movies 246 and 268). score orders the
-- user's list (higher first; not a rating); predicted_rating is the predicted rating 1-5
-- (NULL for a run published before migration 0007). rank is NULL for movies the user has
-- already rated.
SELECT s.movie_id, m.title, round(s.score::numeric, 3) AS score,
       round(s.predicted_rating::numeric, 2) AS predicted_rating, s.rank, s.seen, s.model_version
FROM recsys.current_ranked_scores s
JOIN recsys.movies m ON m.movie_id = s.movie_id
WHERE s.user_id = 17 AND m.title = 'Chasing Amy (1997)'
ORDER BY s.score DESC, s.movie_id;
