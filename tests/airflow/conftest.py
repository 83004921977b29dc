"""The Airflow area: this test process's Airflow gets a throwaway home before anything imports it.

Airflow reads ``AIRFLOW_HOME`` once, at import time, and writes ``airflow.cfg`` there; the tests
must never touch ``~/airflow`` or the developer's ``.local/airflow``. pytest imports this file
before any test module of the area, so those modules import ``airflow``, the plugins and the
DAG modules at their top like any other import.
"""

from __future__ import annotations

import airflow_env  # scripts/airflow_env.py (on sys.path through pyproject's pytest pythonpath)

airflow_env.isolate_for_tests()
