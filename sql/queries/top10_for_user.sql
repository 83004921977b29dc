-- A user's top 10 unseen movies from the published ranking (change the user id).
SELECT rank, movie_id, title, array_to_string(genres, ', ') AS genres, round(score::numeric, 3) AS score,
       model_version, published_at
FROM recsys.top_recommendations
WHERE user_id = 17 AND rank <= 10
ORDER BY rank;
