"""The project checks: test_compose.py reads Airflow's own CLI parser and configuration in this
process, so Airflow gets the tests' throwaway home first (see tests/airflow/conftest.py)."""

from __future__ import annotations

import airflow_env  # scripts/airflow_env.py (on sys.path through pyproject's pytest pythonpath)

airflow_env.isolate_for_tests()
