"""Schema fuzzing of the lookup API with schemathesis, and the hook it needs.

As a script: start the API on a database (``--temp-db`` creates and drops one with ML-100K
and a published baseline, like bench/api_load.py) and run ``schemathesis run`` with every
check and thousands of generated requests (valid and invalid) per operation:

    .venv/bin/python bench/api_fuzz.py --temp-db --max-examples 2000

The rerank operation's 1,000-candidate limit counts titles and ids together, which JSON
Schema cannot state; schemathesis's boundary cases (1,000 ids plus a title) are then
"valid data rejected". So ``positive_data_acceptance`` is off for that one operation
(``CONFIG``); every other check stays on, and the limit itself is tested exactly in
tests/api/test_api.py (1,000 accepted, 1,001 rejected).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
MAX_CANDIDATES = 1000


CONFIG = """
[[operations]]
include-path = "/recommendation/ranked_recommendation"
checks.positive_data_acceptance.enabled = false
"""


def schemathesis_command(base: str, max_examples: int, seed: int = 1) -> list[str]:
    """The CLI call: every check, every phase but stateful (the API has no state to walk)."""
    config = Path(tempfile.gettempdir()) / "recsys-api-schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    cmd = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config)]
    cmd += ["run", f"{base}/openapi.json"]
    cmd += ["--max-examples", str(max_examples), "--seed", str(seed), "--workers", "1"]
    cmd += ["--request-timeout", "15", "--phases", "examples,coverage,fuzzing", "--no-color"]
    cmd += ["--suppress-health-check", "all"]
    return cmd


def main() -> int:
    sys.path.insert(0, str(BENCH))
    from api_load import start_api, temp_database
    from recsys.db import urls
    from recsys.db.admin import drop_database

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-database-url", help="URL the API reads with (read-only role)")
    parser.add_argument("--temp-db", action="store_true")
    parser.add_argument(
        "--admin-url", default=os.environ.get("RECSYS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument(
        "--archive", default=os.environ.get("RECSYS_TEST_ARCHIVE", str(BENCH.parent.parent / "shared/data/ml-100k.zip"))
    )
    parser.add_argument("--max-examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.temp_db and not args.api_database_url:
        parser.error("give --api-database-url or --temp-db")
    owner_url = temp_database(args.admin_url, args.archive) if args.temp_db else args.api_database_url
    api_url = urls.as_role(owner_url, "recsys_api") if args.temp_db else owner_url
    proc = None
    try:
        proc, base = start_api(api_url, workers=1)
        cmd = schemathesis_command(base, args.max_examples, args.seed)
        print(" ".join(cmd), flush=True)
        return subprocess.run(cmd, timeout=3600).returncode
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)
        if args.temp_db:
            drop_database(args.admin_url, owner_url)


if __name__ == "__main__":
    sys.exit(main())
