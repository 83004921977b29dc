#!/usr/bin/env bash
# The Airflow UI locally (`make airflow`): api-server, then dag-processor, triggerer and
# scheduler (LocalExecutor), started in that order by this script (not `airflow standalone`,
# whose scheduler started tasks before the API server listened and whose children outlived it).
#
# Same state as scripts/pipeline.sh: AIRFLOW_HOME=.local/airflow, metadata in the `airflow`
# database next to the recsys one, AIRFLOW_CONN_RECSYS_DB, RECSYS_DATA_URL for the ingest.
# Starting runs nothing: the scheduled DAGs are paused at every start (RECSYS_AIRFLOW_SCHEDULES=1
# keeps them as they are) and asset triggers queued by `make run` are dropped; unpause a DAG in
# the UI to let it run. Stopping (Ctrl-C, SIGTERM, SIGHUP) stops every process this script
# started, tasks included (SIGTERM, then SIGKILL after RECSYS_AIRFLOW_STOP_TIMEOUT s), and marks
# the runs it interrupted failed.
# Address: RECSYS_AIRFLOW_HOST (default 127.0.0.1, loopback only) and AIRFLOW_PORT (8080).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow_env.sh
HOST="${RECSYS_AIRFLOW_HOST:-127.0.0.1}"
PORT="${AIRFLOW_PORT:-8080}"
STOP_TIMEOUT="${RECSYS_AIRFLOW_STOP_TIMEOUT:-20}"
case "$HOST" in 0.0.0.0 | :: | '') LOCAL=127.0.0.1 ;; *) LOCAL="$HOST" ;; esac
URL_HOST="$LOCAL"; [[ "$URL_HOST" == *:* ]] && URL_HOST="[$URL_HOST]"
export AIRFLOW__API__HOST="$HOST" AIRFLOW__API__PORT="$PORT"
# Task processes report to the API server's execution API: it must follow the address.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://${URL_HOST}:${PORT}/execution/"
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW_USER:-admin}:admin"
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$PASSWORDS"
# DAGs new to this metadata database start paused too (airflow_env.py unpauses them for make run).
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
LOGS="$AIRFLOW_HOME/standalone-logs"
mkdir -p "$LOGS"

quiet() { "$@" >> "$LOGS/setup.log" 2>&1 || { tail -n 30 "$LOGS/setup.log" >&2; exit 1; }; }
: > "$LOGS/setup.log"
quiet airflow db migrate
quiet airflow dags reserialize
python scripts/standalone_state.py prepare
# The ingest reads RECSYS_DATA_URL, as in make run; unset, the local archive the database was
# last loaded from (when it still exists) rather than the network.
if [ -z "${RECSYS_DATA_URL:-}" ]; then
  RECSYS_DATA_URL="$(python - "$RECSYS_URL" <<'PY' || true
import os, sys
import sqlalchemy as sa
from recsys.db.engine import make_engine
engine = make_engine(sys.argv[1])
try:
    with engine.connect() as conn:
        source = conn.execute(sa.text("SELECT source FROM recsys.datasets ORDER BY dataset_id DESC LIMIT 1")).scalar()
except sa.exc.DBAPIError:
    source = None  # no feature store yet
path = (source or "").removeprefix("file://")
print(source if path.startswith("/") and os.path.isfile(path) else "")
PY
)"
  [ -n "$RECSYS_DATA_URL" ] && export RECSYS_DATA_URL || unset RECSYS_DATA_URL
fi

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
PY

# Each component in a session of its own (setsid): task processes make process groups of
# their own, but stay in the session, so `pkill -s` reaches all of them, orphans included.
SESSIONS=()
start() {  # start NAME ARGS...: run `airflow ARGS...` in a new session, output into LOGS/NAME.log
  local name=$1; shift
  setsid airflow "$@" > "$LOGS/$name.log" 2>&1 < /dev/null &
  SESSIONS+=("$!")
  echo "$!" > "$LOGS/$name.pid"
}
alive() { local sid; for sid in "$@"; do pgrep -s "$sid" > /dev/null && return 0; done; return 1; }
stopping=0
stop() {  # SIGTERM the scheduler's session first (its tasks still reach the API server), then the rest
  [ "$stopping" = 1 ] || [ "${#SESSIONS[@]}" = 0 ] && return
  stopping=1
  trap '' INT TERM HUP
  echo "stopping (SIGKILL after ${STOP_TIMEOUT} s)..."
  local sid deadline=$((SECONDS + STOP_TIMEOUT))
  for group in "${SESSIONS[*]:3}" "${SESSIONS[*]:0:3}"; do
    for sid in $group; do pkill -TERM -s "$sid" 2> /dev/null || true; done
    while alive $group && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
  done
  for sid in "${SESSIONS[@]}"; do pkill -KILL -s "$sid" 2> /dev/null || true; done
  while alive "${SESSIONS[@]}"; do sleep 0.2; done
  python scripts/standalone_state.py interrupted || true
  echo "stopped"
}
trap 'stop; exit 143' TERM
trap 'stop; exit 130' INT
trap 'stop; exit 129' HUP
trap 'stop' EXIT

start api-server api-server --host "$HOST" --port "$PORT"
# The scheduler starts only once the API server answers: its tasks report there.
python - "http://${URL_HOST}:${PORT}/api/v2/monitor/health" "$LOGS/api-server.log" <<'PY'
import sys, time, urllib.request
url, log = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(f"the API server did not answer {url} within 180 s; see {log}")
PY
start dag-processor dag-processor
start triggerer triggerer
start scheduler scheduler

python - "$PASSWORDS" "${AIRFLOW_USER:-admin}" "http://${URL_HOST}:${PORT}" "$HOST" "$LOGS" \
  "${RECSYS_DATA_URL:-}" <<'PY'
import json, sys
from recsys.config import Settings
from recsys.errors import ConfigError
path, user, url, host, logs, data = sys.argv[1:]
try:
    data = data or Settings().source_url  # unset: the data set's official address
except ConfigError as error:  # own-csv has none: the ingest DAG fails saying so; the UI still starts
    data = f"none ({error})"
print(f"\n  Airflow UI:  {url}   (listening on {host}; RECSYS_AIRFLOW_HOST / AIRFLOW_PORT change it)")
print(f"  login:       {user} / {json.loads(open(path).read())[user]}   (stored in {path})")
print("  DAGs:        movielens_ingest, movielens_train, movielens_precompute paused (unpause to schedule);")
print("               movielens_rerank runs when triggered")
print(f"  ingest from: {data}   (RECSYS_DATA_URL)")
print("  plugin:      Browse > Recsys status, Browse > Lookup API docs (behind the login)")
print(f"  logs:        {logs}/<component>.log;  Ctrl-C stops everything\n")
PY
# Until a component exits or a signal arrives (the traps stop the others).
wait -n "${SESSIONS[@]}" || true
echo "an Airflow component exited; see $LOGS" >&2
exit 1
