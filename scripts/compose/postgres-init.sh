#!/usr/bin/env bash
# First start of the compose PostgreSQL: separate roles and databases, none a superuser.
#   airflow        owns database airflow (Airflow metadata, Celery results)
#   recsys_writer  owns database recsys: migrations, ingestion, training, precompute (the DAGs)
#   recsys_reader  NOLOGIN group with SELECT on schema recsys (granted by sql/0004.api.sql)
#   recsys_api     the lookup API's login: member of recsys_reader, sessions read-only by default
# Passwords come from the environment (.env), never from this file. Runs once, as the
# postgres superuser, from /docker-entrypoint-initdb.d.
set -euo pipefail
: "${AIRFLOW_DB_PASSWORD:?}" "${RECSYS_WRITER_PASSWORD:?}" "${RECSYS_API_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-postgres}" \
  -v airflow_pw="$AIRFLOW_DB_PASSWORD" -v writer_pw="$RECSYS_WRITER_PASSWORD" -v api_pw="$RECSYS_API_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE recsys_writer LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'writer_pw';
CREATE DATABASE recsys OWNER recsys_writer;
REVOKE ALL ON DATABASE recsys FROM PUBLIC;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
-- Nobody but the superuser connects to the maintenance and template databases.
REVOKE ALL ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
CREATE ROLE recsys_reader NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
CREATE ROLE recsys_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 200
  IN ROLE recsys_reader PASSWORD :'api_pw';
ALTER ROLE recsys_api SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE recsys TO recsys_reader;
SQL
