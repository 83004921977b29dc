-- Feature store (recsys.users, movies, ratings, split_tests, datasets): every statement on
-- these tables. Owner: recsys/db/store.py, the only module that runs them. The COPY of a
-- load is built there (psycopg's COPY ... FROM STDIN is not a query aiosql can run).

-- name: newest_dataset_members()^
-- The newest load's member digests and the row counts it recorded.
SELECT member_sha256, users, movies, ratings FROM recsys.datasets ORDER BY dataset_id DESC LIMIT 1;

-- name: table_counts()^
-- Users, movies and ratings as readers see them now.
SELECT (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies),
       (SELECT count(*) FROM recsys.ratings);

-- name: feature_store_summary()^
-- The counts and the newest data set's fingerprint, in one snapshot.
SELECT (SELECT count(*) FROM recsys.users) AS users, (SELECT count(*) FROM recsys.movies) AS movies,
       (SELECT count(*) FROM recsys.ratings) AS ratings,
       (SELECT fingerprint FROM recsys.datasets ORDER BY dataset_id DESC LIMIT 1) AS fingerprint;

-- name: newest_fingerprint()$
SELECT fingerprint FROM recsys.datasets ORDER BY dataset_id DESC LIMIT 1;

-- name: lock_ingest(lock_id)$
-- Serialises concurrent loads until the transaction ends.
SELECT pg_advisory_xact_lock(:lock_id);

-- name: delete_split_tests()!
-- The four deletes of a reload, referencing tables first.
DELETE FROM recsys.split_tests;

-- name: delete_ratings()!
DELETE FROM recsys.ratings;

-- name: delete_movies()!
DELETE FROM recsys.movies;

-- name: delete_users()!
DELETE FROM recsys.users;

-- name: newest_dataset_adapter()$
-- Which adapter read the newest load (recsys/data/adapters.py): its side columns and rating scale.
SELECT dataset FROM recsys.datasets ORDER BY dataset_id DESC LIMIT 1;

-- name: record_dataset(source, fingerprint, members, users, movies, ratings, dataset)!
INSERT INTO recsys.datasets (source, fingerprint, member_sha256, users, movies, ratings, dataset)
VALUES (:source, :fingerprint, CAST(:members AS jsonb), :users, :movies, :ratings, :dataset);

-- name: analyze_feature_store()!
ANALYZE recsys.users, recsys.movies, recsys.ratings, recsys.split_tests;

-- The frames below are read with pandas (store.py runs their text through pd.read_sql).

-- name: users_frame()
SELECT * FROM recsys.users ORDER BY user_id;

-- name: movies_frame()
SELECT * FROM recsys.movies ORDER BY movie_id;

-- name: ratings_frame()
SELECT * FROM recsys.ratings ORDER BY user_id, movie_id;

-- name: split_tests_frame()
SELECT split, user_id, movie_id FROM recsys.split_tests ORDER BY 1, 2, 3;

-- name: rating_triples_frame()
-- user_id, movie_id, rating of every rating, in no particular order (the API's baseline).
SELECT user_id, movie_id, rating FROM recsys.ratings;

-- name: user_ids_frame()
SELECT user_id FROM recsys.users ORDER BY user_id;

-- name: movie_ids_frame()
SELECT movie_id FROM recsys.movies ORDER BY movie_id;

-- name: movie_titles_frame()
SELECT DISTINCT title FROM recsys.movies ORDER BY title;

-- name: newest_dataset_id()$
-- Which load the tables hold (a precompute process reloads when it changes).
SELECT max(dataset_id) FROM recsys.datasets;

-- name: catalogue_size()^
-- Users and movies: a complete ranking run has one row per pair.
SELECT (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies);

-- name: rated_pairs_frame(user_ids)
-- The (user, movie) pairs these users rated.
SELECT user_id, movie_id FROM recsys.ratings WHERE user_id = ANY(:user_ids);
