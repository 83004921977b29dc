#!/usr/bin/env bash
# The main job through Airflow, once, on a fresh machine: ingest -> train -> precompute with
# `airflow dags test` (real task code, real metadata database, no scheduler), then serve the
# lookup API. Called by `make run`.
#
# Database: RECSYS_DATABASE_URL, or the project-managed PostgreSQL (`recsys db url`). Airflow's
# metadata goes to a database `airflow` on the same server (never SQLite), AIRFLOW_HOME is
# .local/airflow, and the DAGs reach recsys only through AIRFLOW_CONN_RECSYS_DB.
# Knobs: RECSYS_TRAIN_PRESET (full | seed_faithful | tiny | ids_only; default full), RECSYS_TRAIN_SPLIT
# (the gate's holdout; default the DAG's, temporal:0.1), RECSYS_PRECOMPUTE_SHARDS (default 4), RECSYS_NO_SERVE=1 (stop after precompute).
set -euo pipefail
cd "$(dirname "$0")/.."
# A wrong local archive path fails here in one line, not inside the ingest DAG's run.
.venv/bin/python -m recsys.data.download
source scripts/airflow_env.sh
LOGS="$AIRFLOW_HOME/pipeline-logs"
mkdir -p "$LOGS"

source scripts/step.sh

echo "recsys database:   $(python -c 'import sys; from recsys.db.engine import describe; print(describe(sys.argv[1]))' "$RECSYS_URL")"
echo "airflow metadata:  $(python -c 'import sys; from recsys.db.engine import describe; print(describe(sys.argv[1]))' "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")"
echo "AIRFLOW_HOME:      $AIRFLOW_HOME  (task logs: $LOGS)"
step "airflow db migrate" airflow db migrate
step "movielens_ingest" airflow dags test movielens_ingest
step "movielens_train" airflow dags test movielens_train \
  -c "{\"preset\": \"${RECSYS_TRAIN_PRESET:-full}\", \"split\": \"${RECSYS_TRAIN_SPLIT:-temporal:0.1}\"}"
# What the gate decided about the model just trained (a rejected model publishes nothing new).
RECSYS_DATABASE_URL="$RECSYS_URL" recsys status
step "movielens_precompute" airflow dags test movielens_precompute \
  -c "{\"shards\": ${RECSYS_PRECOMPUTE_SHARDS:-4}}"

RECSYS_DATABASE_URL="$RECSYS_URL" recsys status

if [ "${RECSYS_NO_SERVE:-0}" = 1 ]; then
  exit 0
fi
export RECSYS_DATABASE_URL="$RECSYS_URL"
echo "serving the lookup API on http://${RECSYS_API_HOST:-127.0.0.1}:${RECSYS_API_PORT:-8000}/docs (Ctrl-C stops)"
exec recsys serve
