-- A user's predicted score and rank for every movie with a given title (titles are not
-- unique: 'Chasing Amy (1997)' is movies 246 and 268). rank is NULL for movies the user
-- has already rated.
SELECT s.movie_id, m.title, round(s.score::numeric, 3) AS score, s.rank, s.seen, s.model_version
FROM recsys.current_ranked_scores s
JOIN recsys.movies m ON m.movie_id = s.movie_id
WHERE s.user_id = 17 AND m.title = 'Chasing Amy (1997)'
ORDER BY s.score DESC;
