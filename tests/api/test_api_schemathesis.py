"""Schema fuzzing: schemathesis generates valid and invalid requests from the live API's own
OpenAPI spec and applies every check it has (no 5xx, documented status codes, content
types and bodies matching the spec, invalid data rejected, valid data accepted).

Bounded for the test suite: ``RECSYS_API_FUZZ_EXAMPLES`` per operation and phase (default
40, a few hundred requests in all); ``bench/api_fuzz.py`` runs thousands. Seeded, so a
failure reproduces.
"""

from __future__ import annotations

import os
import subprocess

from api_fuzz import schemathesis_command
from tests.support.api import ApiServer, Published
from tests.support.db import db_fingerprint

EXAMPLES = int(os.environ.get("RECSYS_API_FUZZ_EXAMPLES", "40"))


def test_schemathesis_finds_no_failure(api: ApiServer, baseline: Published):
    before = db_fingerprint(baseline.engine)
    cmd = schemathesis_command(api.base, EXAMPLES)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    summary = run.stdout[run.stdout.find("SUMMARY") :] if "SUMMARY" in run.stdout else run.stdout[-3000:]
    print(summary)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "Test cases:" in run.stdout
    assert db_fingerprint(baseline.engine) == before, "fuzzing changed the database"
    assert "Traceback" not in api.output()
