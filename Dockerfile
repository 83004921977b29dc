# The official Apache Airflow 3 image (Python 3.11) extended with this project: the recsys
# library (installed with the project's lock, constraints.txt), the DAGs and the plugin.
# Every Airflow service of docker-compose.yaml and the lookup API run this one image.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION

# The project lives in /opt/recsys; it is installed editable so that recsys finds its
# SQL migrations (sql/) next to the package, exactly as in a checkout.
WORKDIR /opt/recsys
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md ./
COPY --chown=airflow:0 recsys ./recsys
# Pinning apache-airflow to the image's version keeps pip from up- or downgrading Airflow
# itself; the image's own providers (celery, fab, redis, ...) stay as they are.
RUN pip install --no-cache-dir -c constraints.txt "apache-airflow==${AIRFLOW_VERSION}" -e ".[api,model,airflow]"

COPY --chown=airflow:0 sql ./sql
COPY --chown=airflow:0 scripts ./scripts
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
# Created here so the named volume mounted on it starts owned by the airflow user.
RUN mkdir -p /opt/airflow/recsys-home

ENV RECSYS_HOME=/opt/airflow/recsys-home \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /opt/airflow
