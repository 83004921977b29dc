-- The API's role may create nothing in this database, not even temporary tables or functions.
-- depends: 0008.dataset_member_sha256

-- PostgreSQL grants TEMPORARY on every new database to PUBLIC, so recsys_api could create
-- temp tables and (pg_temp) functions. Nothing in the project uses temporary objects, so
-- PUBLIC loses it; the database owner keeps it (an owner's own privileges stay in the ACL)
-- and so does the migrating role, should it not be the owner.
-- Only this database is touched: CONNECT on the cluster's other databases is the
-- cluster owner's business (recsys/db/server.py for the managed server,
-- scripts/compose/postgres-init.sh for compose). What PostgreSQL lets every role do to
-- itself (its password, ALTER ROLE self SET ..., session SET) cannot be revoked; the API
-- pins its session settings when it connects instead (recsys/api/db.py, docs/API.md).
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), current_user);
END
$$;
