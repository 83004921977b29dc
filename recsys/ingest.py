"""`recsys ingest`: fetch, validate, parse and load a data set (``RECSYS_DATASET``) into the feature store."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from recsys.config import Settings
from recsys.data.adapters import read_dataset
from recsys.data.download import fetch_archive, local_archive
from recsys.db.engine import check_connection, make_engine
from recsys.db.migrate import migrate
from recsys.db.store import current_members, replace_movielens
from recsys.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    fingerprint: str
    dataset: str  # the adapter that read it
    users: int
    movies: int
    ratings: int
    loaded: bool  # False when the same data set was already in place
    seconds: float


def ingest(settings: Settings, url: str, *, source: str | None = None, force: bool = False) -> IngestResult:
    """Load the archive named by ``source`` (default: settings) into the database at ``url``.

    A local path is checked first, then the database is checked and migrated, so an
    unreachable server fails before any download; validation happens before the load
    transaction opens, so bad data never touches the tables.
    """
    started = time.perf_counter()
    source = source or settings.source_url
    local_archive(source)  # a missing local file fails before the database is touched
    engine = make_engine(url)
    try:
        check_connection(engine)
        migrate(url)
        archive = fetch_archive(
            source,
            settings.download_dir,
            timeout=settings.download_timeout_s,
            retries=settings.download_retries,
        )
        try:
            data = read_dataset(
                archive, settings.dataset, settings.data_sha256, max_member_bytes=settings.max_member_bytes
            )
        except DataError:
            if archive.parent == settings.download_dir:
                archive.unlink(missing_ok=True)  # a bad cached download must not stick
            raise
        loaded = force or bool(_changed_members(current_members(engine), data.member_sha256))
        if loaded:
            replace_movielens(engine, data, source)
        else:
            log.info("data set %s is already loaded; nothing to do", data.fingerprint[:12])
    finally:
        engine.dispose()
    return IngestResult(
        data.fingerprint,
        data.dataset,
        len(data.users),
        len(data.movies),
        len(data.ratings),
        loaded,
        time.perf_counter() - started,
    )


def _changed_members(loaded: dict[str, str] | None, new: dict[str, str]) -> list[str]:
    """Members that differ from the loaded data set's (all of them when nothing is recorded)."""
    if loaded is None:
        return sorted(new)
    changed = sorted(name for name in loaded.keys() | new.keys() if loaded.get(name) != new.get(name))
    if changed:
        log.info("the archive differs from the loaded data set in %s", ", ".join(changed))
    return changed
