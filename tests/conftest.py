"""Shared fixtures: a real PostgreSQL database per test session, the real archive.

The server is ``RECSYS_TEST_ADMIN_URL`` (CI: the machine's PostgreSQL) or, when unset,
the project-managed one. Each session creates its own uniquely named database and
drops it at the end, so runs never see each other's data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from recsys.config import OFFICIAL_UDATA_SHA256, PROJECT_ROOT, Settings
from recsys.data.splits import make_split
from recsys.db.admin import create_database, drop_database
from recsys.db.engine import make_engine
from recsys.db.migrate import migrate
from recsys.db.store import load_movielens

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


def published(engine: sa.Engine) -> sa.Row | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT run_id, model_version FROM recsys.published_ranking")).first()


def ranking_digest(engine: sa.Engine) -> tuple:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "SELECT count(*), sum(score::numeric), sum(rank), count(*) FILTER (WHERE seen), min(run_id), max(run_id), "
                    "count(predicted_rating), sum(predicted_rating::numeric) FROM recsys.current_ranked_scores"
                )
            ).one()
        )


def make_settings(**overrides) -> Settings:
    """Settings that never touch the user's .local state or the network."""
    values = {"data_sha256": OFFICIAL_UDATA_SHA256, "download_retries": 2, "download_timeout_s": 5.0}
    values.update(overrides)
    return Settings(**values)
