-- A user's top 10 unseen movies from the published ranking (change the user id).
-- score: the ranking score; it orders the list (rank 1 = highest), any real number, not a rating.
-- predicted_rating: the predicted rating (1-5); NULL for a run published before migration 0007.
SELECT rank, movie_id, title, array_to_string(genres, ', ') AS genres, round(score::numeric, 3) AS score,
       round(predicted_rating::numeric, 2) AS predicted_rating, model_version, published_at
FROM recsys.top_recommendations
WHERE user_id = 17 AND rank <= 10
ORDER BY rank;
