-- The lookup contract: the reads of the lookup API and the rerank DAG. Owned by
-- recsys/scoring/rerank.py (the rerank statement, shared by the API and the DAG) and
-- recsys/api/queries.py (the API's other answers); recsys/scoring/title_match.py reads the
-- titles it suggests from. Each answer is one statement, so it comes from one snapshot of
-- one published run. The API runs the statement text (psycopg's %(name)s style, from the
-- query's .sql) on its async pool; the DAG runs the same text on a psycopg connection.

-- name: top_k(user_id, k)
-- schemas.TopKResponse: the published run, whether the user is in it, and the user's top k
-- unseen movies by rank (no rows for the movies when the user is unknown; none at all
-- before the first publish).
WITH pub AS MATERIALIZED (
    SELECT run_id, model_version, published_at FROM recsys.published_ranking LIMIT 1  -- a singleton; tells the planner
)
SELECT p.run_id, p.model_version, p.published_at,
       EXISTS (SELECT 1 FROM recsys.ranked_scores s
               WHERE s.run_id = (SELECT run_id FROM pub) AND s.user_id = :user_id) AS user_known,
       t.rank, t.movie_id, m.title, m.genres, t.score, t.predicted_rating
FROM pub p
LEFT JOIN LATERAL (
    SELECT s.rank, s.movie_id, s.score, s.predicted_rating
    FROM recsys.ranked_scores s
    WHERE s.run_id = (SELECT run_id FROM pub) AND s.user_id = :user_id AND s.rank <= :k
    ORDER BY s.rank
    LIMIT :k
) t ON true
LEFT JOIN LATERAL (  -- k primary-key probes, never a scan of all movies
    SELECT m.title, m.genres FROM recsys.movies m WHERE m.movie_id = t.movie_id LIMIT 1
) m ON true
ORDER BY t.rank;

-- name: rerank(titles, movie_ids, user_id)
-- recsys.scoring.rerank: the candidates (titles and ids) of one user, resolved and scored.
--
-- pub: the published run. requested: each requested title or id with its movie(s), or one
-- row of NULLs when nothing matches; a title matches exactly, else case-insensitively, with
-- one index probe (never a scan of all movies). The requested movies are then joined to
-- the user's rows of the published run: one index range scan of those rows, hashed against
-- the candidates (the leaves have no (user_id, movie_id) index, so that scan, ~0.3 ms for
-- 1,682 movies, is the floor). The part-0 row always exists when a run is published and
-- says whether the user is in it. Against the previous statement (exact titles hash-joined
-- against every movie, a second probe per title for the case-insensitive fallback, the
-- user's scores in their own CTE), measured in a loop of 100-title requests (generic
-- plans): 0.69-0.70 ms of PostgreSQL CPU per request against 0.75-0.84 ms; the rows are the same.
--
-- Rows are (part, position, ...): part 0 is the run, 1 a requested title, 2 a requested
-- id; position is the item's place in the request. build_result sorts by them, so lists
-- such as unknown_titles follow the request whatever join order the planner picks (an
-- ORDER BY here cost ~0.08 ms of PostgreSQL CPU per 100 candidates, sorting the wide rows).
--
-- The candidates arrive as two text parameters, a JSON array of titles and an integer
-- array literal, not as Python lists: psycopg quotes a list into an array literal element
-- by element in Python, 190 us of the API's CPU for 100 titles, where json.dumps (C)
-- takes ~11 us and passing the text ~1 us; PostgreSQL parses either in microseconds.
WITH pub AS MATERIALIZED (
    SELECT run_id, model_version, published_at FROM recsys.published_ranking LIMIT 1  -- a singleton; tells the planner
), requested AS (
    SELECT 1 AS part, t.position, t.title AS requested_title, NULL::integer AS requested_id, m.movie_id, m.title, m.genres
    FROM json_array_elements_text(CAST(:titles AS json)) WITH ORDINALITY AS t(title, position)
    LEFT JOIN LATERAL (  -- the exact matches if any (they sort first and tie), else all case-insensitive ones
        SELECT movie_id, title, genres FROM recsys.movies WHERE lower(title) = lower(t.title)
        ORDER BY title = t.title DESC FETCH FIRST 1 ROW WITH TIES
    ) m ON true
    UNION ALL
    SELECT 2, i.position, NULL, i.movie_id, m.movie_id, m.title, m.genres
    FROM unnest(CAST(:movie_ids AS integer[])) WITH ORDINALITY AS i(movie_id, position)
    LEFT JOIN LATERAL (
        SELECT movie_id, title, genres FROM recsys.movies WHERE movie_id = i.movie_id LIMIT 1
    ) m ON true
)
SELECT 0 AS part, 0 AS position, NULL::text AS requested_title, NULL::integer AS requested_id,
       NULL::integer AS movie_id, NULL::text AS title, NULL::text[] AS genres,
       NULL::real AS score, NULL::integer AS rank, NULL::boolean AS seen, NULL::real AS predicted_rating,
       p.run_id, p.model_version, p.published_at,
       EXISTS (SELECT 1 FROM recsys.ranked_scores s
               WHERE s.run_id = (SELECT run_id FROM pub) AND s.user_id = :user_id) AS user_known
FROM pub p
UNION ALL
SELECT r.part, r.position, r.requested_title, r.requested_id, r.movie_id, r.title, r.genres, s.score, s.rank, s.seen,
       s.predicted_rating, NULL, NULL, NULL, NULL
FROM requested r
LEFT JOIN recsys.ranked_scores s
       ON s.run_id = (SELECT run_id FROM pub) AND s.user_id = :user_id AND s.movie_id = r.movie_id;

-- name: search_movies(q, limit)
-- schemas.MovieSearchResponse: titles containing q case-insensitively (strpos, not LIKE, so
-- percent and underscore are literal): the exact title first, then prefixes, then the rest.
SELECT movie_id, title, release_year, genres
FROM recsys.movies
WHERE strpos(lower(title), lower(:q)) > 0
ORDER BY lower(title) = lower(:q) DESC, starts_with(lower(title), lower(:q)) DESC, title, movie_id
LIMIT :limit;

-- name: ready()
-- schemas.Ready: the published run, if any.
SELECT run_id, model_version, published_at FROM recsys.published_ranking;

-- name: latest_dataset()
-- The newest ingestion is what recsys.movies holds; its fingerprint too, so two databases
-- loaded differently in one process (tests) never share a title index by an equal dataset_id.
SELECT dataset_id, fingerprint FROM recsys.datasets ORDER BY dataset_id DESC LIMIT 1;

-- name: titles()
-- Every movie title, for title_match's suggestions.
SELECT movie_id, title FROM recsys.movies ORDER BY movie_id;
