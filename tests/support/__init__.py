"""Helpers the test areas share, imported as ``tests.support.<module>`` (pyproject's pytest
``pythonpath`` puts the project root on ``sys.path``). Fixtures live in the conftest.py files;
these modules hold the plain functions and classes behind them. Nothing here is collected.

- ``db``: settings that stay offline, snapshots and digests of what readers see, role URLs.
- ``api``: the published two-number baseline whose scores tests recompute, and ``recsys
  serve`` in a subprocess (``ApiServer``).
- ``postgres``: a throwaway PostgreSQL cluster tests may stop and start (``TempPostgres``).
- ``net``: free loopback ports.
"""
