-- Results of the movielens_rerank DAG: one request row per Airflow run, one result row per ranked movie.
-- depends: 0004.api

-- The request as validated, where its scores came from, and what could not be ranked
-- (unknown or ambiguous titles, unknown ids), so an analyst sees the whole answer.
-- airflow_run_id is unique: a retried task replaces its own result, never duplicates it.
CREATE TABLE recsys.rerank_requests (
    request_id          bigserial   PRIMARY KEY,
    dag_id              text        NOT NULL,
    airflow_run_id      text        NOT NULL,
    user_id             integer     NOT NULL CHECK (user_id > 0),
    k                   integer     CHECK (k > 0),
    candidates          jsonb       NOT NULL,
    precompute_run_id   bigint      NOT NULL REFERENCES recsys.precompute_runs (run_id),
    model_version       text        NOT NULL,
    unknown_titles      text[]      NOT NULL DEFAULT '{}',
    ambiguous_titles    jsonb       NOT NULL DEFAULT '[]',
    unknown_movie_ids   integer[]   NOT NULL DEFAULT '{}',
    unscored_movie_ids  integer[]   NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dag_id, airflow_run_id)
);

CREATE TABLE recsys.rerank_results (
    request_id  bigint  NOT NULL REFERENCES recsys.rerank_requests (request_id) ON DELETE CASCADE,
    position    integer NOT NULL CHECK (position > 0),   -- 1 = best candidate for the user
    movie_id    integer NOT NULL,  -- no FK: ingestion truncates and refills recsys.movies
    title       text    NOT NULL,
    score       real    NOT NULL,
    rank        integer,                                 -- the movie's rank in the user's published ranking; NULL if seen
    seen        boolean NOT NULL,
    PRIMARY KEY (request_id, position)
);
CREATE INDEX rerank_requests_user_idx ON recsys.rerank_requests (user_id, created_at);
