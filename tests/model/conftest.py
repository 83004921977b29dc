"""The model area's fixture: the real ML-100K archive, read and verified once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import OFFICIAL_UDATA_SHA256
from recsys.data.movielens import MovieLens, read_archive


@pytest.fixture(scope="module")
def ml(archive: Path) -> MovieLens:
    return read_archive(archive, OFFICIAL_UDATA_SHA256)
