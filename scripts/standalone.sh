#!/usr/bin/env bash
# The Airflow UI locally: `airflow standalone` (api-server, scheduler, dag-processor,
# triggerer; LocalExecutor) with examples off, this project's DAGs and plugin loaded, the
# four DAGs unpaused (nothing back-fills: catchup is off, cron schedules wait for their next
# tick; movielens_rerank runs only when triggered), and the login printed. Called by `make airflow`.
#
# Same state as scripts/pipeline.sh: AIRFLOW_HOME=.local/airflow, metadata in the `airflow`
# database next to the recsys one, AIRFLOW_CONN_RECSYS_DB. Port: AIRFLOW_PORT (default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow_env.sh
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
# Task processes report to the API server's execution API: it must follow the port.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://localhost:${AIRFLOW__API__PORT}/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW_USER:-admin}:admin"
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$PASSWORDS"

quiet() { "$@" > "$AIRFLOW_HOME/standalone-setup.log" 2>&1 || { tail -n 30 "$AIRFLOW_HOME/standalone-setup.log" >&2; exit 1; }; }
quiet airflow db migrate
quiet airflow dags reserialize
for dag in movielens_ingest movielens_train movielens_precompute movielens_rerank; do
  quiet airflow dags unpause "$dag"
done

# A random password on first start (kept in AIRFLOW_HOME, git-ignored), never a default one.
python - "$PASSWORDS" "${AIRFLOW_USER:-admin}" <<'PY'
import json, secrets, sys
from pathlib import Path
path, user = Path(sys.argv[1]), sys.argv[2]
data = json.loads(path.read_text() or "{}") if path.exists() else {}
if user not in data:
    data[user] = secrets.token_urlsafe(12)
    path.write_text(json.dumps(data) + "\n")
    path.chmod(0o600)
print(f"\n  Airflow UI:  http://localhost:{__import__('os').environ['AIRFLOW__API__PORT']}")
print(f"  login:       {user} / {data[user]}   (stored in {path})")
print("  DAGs:        movielens_ingest, movielens_train, movielens_precompute, movielens_rerank (unpaused)")
print("  plugin:      Browse > Recsys status, Browse > Lookup API docs\n")
PY
exec airflow standalone
