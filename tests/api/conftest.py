"""The API area's fixture: one ``recsys serve`` for the session, over the published baseline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api import ApiServer, Published
from tests.support.db import as_role


@pytest.fixture(scope="session")
def api(baseline: Published) -> Iterator[ApiServer]:
    server = ApiServer(as_role(baseline.url))
    yield server
    if server.proc.poll() is None:
        assert "Traceback" not in server.output(), server.output()
        server.stop()
