# Sourced by pipeline.sh and standalone.sh: the one local Airflow environment both run in.
# From the project root: the venv's bin on PATH, TensorFlow's legacy Keras, no examples,
# RECSYS_URL (given or the managed server) and the variables scripts/airflow_env.py derives
# from it (AIRFLOW_HOME, metadata database, AIRFLOW_CONN_RECSYS_DB).
export PATH="$PWD/.venv/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL=2 AIRFLOW__CORE__LOAD_EXAMPLES=False
RECSYS_URL="${RECSYS_DATABASE_URL:-$(recsys db url)}"
exports="$(python scripts/airflow_env.py exports "$RECSYS_URL")"
eval "$exports"
