"""The fixtures every area needs: a real PostgreSQL database per test session, the real archive,
and what is published in it (a tiny trained model, the API tests' baseline).

The server is ``RECSYS_TEST_ADMIN_URL`` (CI: the machine's PostgreSQL) or, when unset,
the project-managed one. Each session creates its own uniquely named database and
drops it at the end, so runs never see each other's data.

Each area's own fixtures are in its conftest.py (tests/api/, tests/airflow/, tests/project/);
plain helpers are in tests/support/.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from recsys.config import PROJECT_ROOT
from recsys.data.splits import make_split
from recsys.db.admin import create_database, drop_database
from recsys.db.engine import make_engine
from recsys.db.migrate import migrate
from recsys.db.store import load_movielens
from tests.support.api import BASELINE_VERSION, Published, current_published, publish_expected
from tests.support.db import make_settings

ARCHIVE = Path(os.environ.get("RECSYS_TEST_ARCHIVE", PROJECT_ROOT.parent / "shared/data/ml-100k.zip"))


def _admin_url() -> str:
    url = os.environ.get("RECSYS_TEST_ADMIN_URL")
    if url:
        return url
    from recsys.config import get_settings
    from recsys.db import server

    return server.start(get_settings().pgdata).replace("/recsys?", "/postgres?")


@pytest.fixture(scope="session")
def admin_url() -> str:
    return _admin_url()


@pytest.fixture(scope="session")
def archive() -> Path:
    if not ARCHIVE.is_file():
        pytest.fail(f"MovieLens archive not found at {ARCHIVE}; set RECSYS_TEST_ARCHIVE")
    return ARCHIVE


@pytest.fixture
def empty_db_url(admin_url: str) -> Iterator[str]:
    """A brand-new database with the schema applied and no data."""
    url = create_database(admin_url, "recsys_test_empty")
    migrate(url)
    yield url
    drop_database(admin_url, url)


@pytest.fixture(scope="module")
def migrated(admin_url: str) -> Iterator[str]:
    """A brand-new database with the schema applied and no data, shared by one module's tests."""
    url = create_database(admin_url, "recsys_test_migrated")
    migrate(url)
    yield url
    drop_database(admin_url, url)


@pytest.fixture(scope="session")
def db_url(admin_url: str, archive: Path) -> Iterator[str]:
    """A database for the whole session with the real ML-100K ingested."""
    from recsys.ingest import ingest

    url = create_database(admin_url, "recsys_test")
    ingest(make_settings(), url, source=str(archive))
    yield url
    drop_database(admin_url, url)


@pytest.fixture(scope="session")
def db_engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def tiny_champion(db_engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny model trained on u1, registered as a challenger (straight into the registry table).

    Tests pass its version explicitly, so the model tests' champions never interfere.
    """
    from recsys.model.config import load_config
    from recsys.model.export import export_model
    from recsys.model.train import train

    ml = load_movielens(db_engine)

    trained = train(ml, make_split("u1", ml.ratings, ml.split_tests), load_config("tiny"), verbose=0)
    artifact = export_model(trained, tmp_path_factory.mktemp("artifacts") / "tiny-precompute")
    with db_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO recsys.model_versions (version_id, data_fingerprint, split, config, metrics, "
                "artifact_uri, status) VALUES ('tiny-precompute', :fp, 'u1', :cfg, '{}', :uri, 'challenger')"
            ),
            {"fp": ml.fingerprint, "cfg": json.dumps({"name": "tiny"}), "uri": str(artifact)},
        )
    return "tiny-precompute"


@pytest.fixture(scope="session")
def baseline(db_url: str) -> Published:
    """The session database with the two-number baseline published (tests/support/api.py)."""
    return publish_expected(db_url, BASELINE_VERSION)


@pytest.fixture
def current_baseline(baseline: Published) -> Published:
    """What is published now, as long as these tests published it; republished if not."""
    return current_published(baseline)
