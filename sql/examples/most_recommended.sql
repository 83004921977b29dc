-- The movies that appear most often in users' top 10 of the published ranking (top 10 by
-- the ranking score), with their mean predicted rating (1-5) among those users.
SELECT movie_id, title, count(*) AS users_with_it_in_top10, round(avg(rank), 1) AS mean_rank,
       round(avg(predicted_rating)::numeric, 2) AS mean_predicted_rating
FROM recsys.top_recommendations
WHERE rank <= 10
GROUP BY movie_id, title
ORDER BY users_with_it_in_top10 DESC, mean_rank, movie_id
LIMIT 20;
