"""One settings object for the whole library, read from ``RECSYS_*`` environment variables.

pydantic-settings gives typed, validated settings with clear errors for a bad value,
so every entry point (CLI, DAGs, API) sees the same configuration the same way.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OFFICIAL_DATA_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# sha256 of u.data in the official MovieLens 100K release. The zip bytes vary between
# re-packed copies, so the content is what gets fingerprinted.
OFFICIAL_UDATA_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
# 16x the largest ML-100K member (u.data, 1.9 MB): room for edits, none for a zip bomb.
MAX_MEMBER_BYTES = 32 * 2**20


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy/libpq URL of the recsys database. Unset: the project-managed server.",
    )
    home: Path = Field(
        default=PROJECT_ROOT / ".local",
        description="Project-local state: managed PostgreSQL data, downloads, artifacts.",
    )
    data_url: str = Field(
        default=OFFICIAL_DATA_URL,
        description="Where to get MovieLens 100K: https URL, file:// URL or a local path.",
    )
    data_sha256: str = Field(
        default=OFFICIAL_UDATA_SHA256,
        description="Expected sha256 of u.data inside the archive; empty skips the check.",
    )
    download_timeout_s: float = Field(default=60.0, gt=0)
    download_retries: int = Field(default=4, ge=1, le=20)
    max_member_bytes: int = Field(
        default=MAX_MEMBER_BYTES,
        gt=0,
        description="Largest uncompressed size of one archive member; a larger one is refused unread.",
    )
    artifacts_dir: Path | None = Field(default=None, description="Model artifacts. Default: <home>/artifacts.")

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def download_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def artifacts_path(self) -> Path:
        return self.artifacts_dir or self.home / "artifacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
