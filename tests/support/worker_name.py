"""``[core] hostname_callable`` for several Airflow workers on one test host.

Every process on one machine has the same fully qualified name, so the task instances could
not say which worker ran a try; a worker started with ``RECSYS_WORKER_NAME`` reports that.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("RECSYS_WORKER_NAME") or socket.getfqdn()
