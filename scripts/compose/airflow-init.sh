#!/usr/bin/env bash
# One-off init job of docker-compose.yaml: Airflow metadata schema, the admin user, the
# recsys schema (as the writer role). Idempotent: safe to run on every `docker compose up`.
set -euo pipefail
: "${AIRFLOW_ADMIN_PASSWORD:?set a non-default AIRFLOW_ADMIN_PASSWORD in .env}"
case "$AIRFLOW_ADMIN_PASSWORD" in
  admin|airflow|password|changeme|change-me)
    echo "refusing the well-known admin password '$AIRFLOW_ADMIN_PASSWORD': set another in .env" >&2; exit 2;;
esac
if [ "${#AIRFLOW_ADMIN_PASSWORD}" -lt 12 ]; then
  echo "AIRFLOW_ADMIN_PASSWORD must have at least 12 characters" >&2; exit 2
fi

airflow db migrate
if airflow users list --output json 2>/dev/null | grep -q "\"username\": \"${AIRFLOW_ADMIN_USER}\""; then
  airflow users reset-password --username "$AIRFLOW_ADMIN_USER" --password "$AIRFLOW_ADMIN_PASSWORD"
else
  airflow users create --role Admin --username "$AIRFLOW_ADMIN_USER" --password "$AIRFLOW_ADMIN_PASSWORD" \
    --firstname Recsys --lastname Admin --email "${AIRFLOW_ADMIN_EMAIL:-admin@example.invalid}"
fi
recsys db migrate
echo "airflow-init done: log in as ${AIRFLOW_ADMIN_USER} with AIRFLOW_ADMIN_PASSWORD from .env"
