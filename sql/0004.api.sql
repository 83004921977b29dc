-- Read side of the published ranking: views for the API and analysts, and read-only roles.
-- depends: 0003.ranking

-- Each user's unseen movies in rank order, from the published run only, with the movie's
-- title and genres and when the ranking was published. Analysts: filter by user_id and
-- rank <= k; the (user_id, rank) index on each run's leaves makes that an index scan.
CREATE VIEW recsys.top_recommendations AS
SELECT s.user_id, s.rank, s.movie_id, m.title, m.genres, s.score, s.model_version, s.run_id, p.published_at
FROM recsys.current_ranked_scores s
JOIN recsys.published_ranking p ON p.run_id = s.run_id
JOIN recsys.movies m ON m.movie_id = s.movie_id
WHERE s.rank IS NOT NULL;

COMMENT ON VIEW recsys.top_recommendations IS
    'Unseen movies per user in rank order (1 = best) from the published ranking run only.';

-- Roles are cluster-wide while grants are per database, and several databases (tests,
-- dev, prod) may share one server and migrate at the same time: create the roles only if
-- missing and tolerate a concurrent creator. A migrating user that may not create roles
-- (no CREATEROLE) skips this; an administrator then creates them once by hand.
--   recsys_reader: NOLOGIN group with SELECT on schema recsys and nothing else.
--   recsys_api:    the API's login role; read-only by grants *and* by session default.
-- Passwords are never set here: an administrator runs ALTER ROLE recsys_api PASSWORD ...
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
        RAISE NOTICE 'current user may not create roles: recsys_reader/recsys_api left to an administrator';
        RETURN;
    END IF;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recsys_reader') THEN
            CREATE ROLE recsys_reader NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
        END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- another database's migration created it first
    END;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recsys_api') THEN
            CREATE ROLE recsys_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
                CONNECTION LIMIT 200 IN ROLE recsys_reader;
        END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END;
    -- Defence in depth: even a future mistaken GRANT cannot make the API's sessions write.
    ALTER ROLE recsys_api SET default_transaction_read_only = on;
END
$$;

-- Per-database grants, only when the roles exist (see above). The public schema keeps
-- PostgreSQL 15's defaults (no CREATE for PUBLIC); nothing in it is granted to the reader.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recsys_reader') THEN
        RETURN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO recsys_reader', current_database());
    GRANT USAGE ON SCHEMA recsys TO recsys_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA recsys TO recsys_reader;
    -- Tables and views created later by the migrating/precompute role are readable too.
    ALTER DEFAULT PRIVILEGES IN SCHEMA recsys GRANT SELECT ON TABLES TO recsys_reader;
END
$$;
