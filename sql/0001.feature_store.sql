-- Feature store: MovieLens users, movies and ratings, keyed by id (titles are not unique).
-- depends:
CREATE SCHEMA IF NOT EXISTS recsys;

CREATE TABLE recsys.users (
    user_id     integer PRIMARY KEY CHECK (user_id > 0),
    age         smallint NOT NULL CHECK (age BETWEEN 1 AND 120),
    gender      char(1)  NOT NULL CHECK (gender IN ('M', 'F')),
    occupation  text     NOT NULL,
    zip_code    text     NOT NULL
);

CREATE TABLE recsys.movies (
    movie_id      integer PRIMARY KEY CHECK (movie_id > 0),
    title         text    NOT NULL,
    release_date  date,
    release_year  smallint,
    imdb_url      text,
    genres        text[]  NOT NULL DEFAULT '{}'
);
-- Title lookups (the API resolves titles to ids); duplicates are allowed on purpose.
CREATE INDEX movies_title_idx ON recsys.movies (title);
CREATE INDEX movies_title_lower_idx ON recsys.movies (lower(title) text_pattern_ops);

CREATE TABLE recsys.ratings (
    user_id   integer  NOT NULL REFERENCES recsys.users (user_id),
    movie_id  integer  NOT NULL REFERENCES recsys.movies (movie_id),
    rating    smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    rated_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, movie_id)
);
-- The "seen" flag in precompute and per-movie aggregates scan by movie.
CREATE INDEX ratings_movie_idx ON recsys.ratings (movie_id);
CREATE INDEX ratings_rated_at_idx ON recsys.ratings (rated_at);

-- Test part of each canonical split (u1..u5, ua, ub); the base part is every other rating.
CREATE TABLE recsys.split_tests (
    split     text    NOT NULL,
    user_id   integer NOT NULL,
    movie_id  integer NOT NULL,
    PRIMARY KEY (split, user_id, movie_id),
    FOREIGN KEY (user_id, movie_id) REFERENCES recsys.ratings (user_id, movie_id)
);

-- One row per successful ingestion: what was loaded, from where, and its fingerprint.
CREATE TABLE recsys.datasets (
    dataset_id   bigserial PRIMARY KEY,
    source       text        NOT NULL,
    fingerprint  text        NOT NULL,
    users        integer     NOT NULL,
    movies       integer     NOT NULL,
    ratings      integer     NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now()
);
