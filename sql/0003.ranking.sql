-- Precomputed rankings: one partition per precompute run, one published run at a time.
-- depends: 0002.model_registry

CREATE TABLE recsys.precompute_runs (
    run_id         bigserial PRIMARY KEY,
    model_version  text        NOT NULL REFERENCES recsys.model_versions (version_id),
    status         text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'published', 'failed', 'superseded', 'dropped')),
    shards         integer     NOT NULL CHECK (shards > 0),
    shards_done    integer[]   NOT NULL DEFAULT '{}',
    users          integer,
    movies         integer,
    rows           bigint,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    published_at   timestamptz,
    error          text
);

-- Every user x movie score of a run. Partitioned by run: a run's partition is filled
-- (one leaf table per shard, loaded with COPY, indexed, analysed) while detached, then
-- attached and published in one transaction. Indexes live on the leaves, never on this
-- parent, so attaching builds nothing.
CREATE TABLE recsys.ranked_scores (
    run_id         bigint   NOT NULL,
    shard          integer  NOT NULL,
    user_id        integer  NOT NULL,
    movie_id       integer  NOT NULL,
    score          real     NOT NULL,
    rank           integer,             -- 1..n among the movies the user has not rated; NULL when seen
    seen           boolean  NOT NULL,   -- the user has rated this movie
    model_version  text     NOT NULL
) PARTITION BY LIST (run_id);

-- The single published run. Readers select the run through this row in the same
-- statement as the scores, so each query sees one complete ranking.
CREATE TABLE recsys.published_ranking (
    singleton      boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    run_id         bigint      NOT NULL REFERENCES recsys.precompute_runs (run_id),
    model_version  text        NOT NULL,
    published_at   timestamptz NOT NULL DEFAULT now()
);

-- The published ranking, for the API and analysts. The scalar subquery lets PostgreSQL
-- prune to the published partition at run time.
CREATE VIEW recsys.current_ranked_scores AS
SELECT s.user_id, s.movie_id, s.score, s.rank, s.seen, s.model_version, s.run_id
FROM recsys.ranked_scores s
WHERE s.run_id = (SELECT run_id FROM recsys.published_ranking);
