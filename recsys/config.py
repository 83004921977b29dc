"""The ``RECSYS_*`` settings of the library, the CLI and the Airflow side, in one place.

One pydantic-settings class per process kind, each field with its default and description:
``Settings`` (library and CLI, here), ``ApiSettings`` (the lookup API, recsys/api/settings.py)
and ``AirflowSettings`` (DAGs, Airflow plugins and the Airflow scripts, here). The README's
settings table lists every field; tests/project/test_settings.py checks it against these classes.
``load_settings`` turns a bad value into one ``ConfigError`` line naming the variable.

Importing this module is cheap (pydantic, which Airflow has loaded already, and no other
part of ``recsys``), so DAG files may read ``AirflowSettings`` at parse time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.data.adapters import ADAPTERS, AUTO, DATASETS, DEFAULT_DATASET
from recsys.errors import ConfigError
from recsys.scoring.commands import DEFAULT_SHARDS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The migrations and the table families' queries: sql/ in a checkout (and an editable
# install); a wheel ships the same files inside the package (pyproject: recsys.sql_files).
SQL_DIR = PROJECT_ROOT / "sql" if (PROJECT_ROOT / "sql").is_dir() else Path(__file__).resolve().parent / "sql_files"
# The default data set's official address and content fingerprint (its adapter owns them).
OFFICIAL_DATA_URL = ADAPTERS[DEFAULT_DATASET].official_url
OFFICIAL_UDATA_SHA256 = ADAPTERS[DEFAULT_DATASET].fingerprint
# The default data set's member cap (each adapter has its own).
MAX_MEMBER_BYTES = ADAPTERS[DEFAULT_DATASET].max_member_bytes
# Every pair is a row of the published table: 126x ML-100K's pairs, room for ML-1M (22.4 M) and the
# 100x scale benchmark (160 M); ml-25m's 10.1 billion would fill the disk, so it is refused up front.
MAX_PAIRS = 200_000_000


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
    dataset: Literal[DATASETS] = Field(  # type: ignore[valid-type]
        default=DEFAULT_DATASET,
        description="The data set's adapter (recsys.data.adapters): its layout, parser, scale and features; "
        "auto: recognised from the archive's members.",
    )
    data_url: str | None = Field(
        default=None,
        description="Where to get the data set: https URL, file:// URL or a local path. Unset: its official address.",
    )
    data_sha256: str | None = Field(
        default=None,
        description="Expected content fingerprint (sha256 of the adapter's ratings member); empty skips the "
        "check. Unset: the data set's official one, if it has a fixed one.",
    )
    download_timeout_s: float = Field(default=60.0, gt=0)
    download_retries: int = Field(default=4, ge=1, le=20)
    max_member_bytes: int | None = Field(
        default=None,
        gt=0,
        description="Largest uncompressed size of one archive member; a larger one is refused unread. "
        "Unset: the data set's own cap (its adapter's).",
    )
    artifacts_dir: Path | None = Field(default=None, description="Model artifacts. Default: <home>/artifacts.")
    max_pairs: int = Field(
        default=MAX_PAIRS,
        gt=0,
        description="Most users x movies pairs a precompute publishes; a larger catalogue is refused before scoring.",
    )

    @property
    def source_url(self) -> str:
        """``data_url``, or the chosen data set's official address (ML-100K's for ``auto``).

        A data set with none (``own-csv``: a user's own data) needs ``data_url``: asked for
        without it, one ``ConfigError`` line says what to set.
        """
        if self.data_url:
            return self.data_url
        chosen = ADAPTERS[DEFAULT_DATASET if self.dataset == AUTO else self.dataset]
        if not chosen.official_url:
            raise ConfigError(
                f"RECSYS_DATASET={chosen.name} has no official download address: set RECSYS_DATA_URL "
                "(or recsys ingest --source) to your archive (a path, file:// or https URL)"
            )
        return chosen.official_url

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def download_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def artifacts_path(self) -> Path:
        return self.artifacts_dir or self.home / "artifacts"


# The precompute DAG's Param refuses more shards than this (each shard is a mapped task).
MAX_SHARDS = 64
# The weekly retrain's holdout, the newest 10% of ratings: the default of `recsys train --split`,
# of the movielens_train DAG's `split` Param and of `make run`.
DEFAULT_TRAIN_SPLIT = "temporal:0.1"


class AirflowSettings(BaseSettings):
    """What the DAGs, the Airflow plugins and the Airflow scripts (make run, make airflow) read."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    precompute_shards: int = Field(
        default=DEFAULT_SHARDS,
        ge=1,
        le=MAX_SHARDS,
        description="Default `shards` Param of movielens_precompute (and of `make run`); the CLI's default "
        "is recsys.scoring.commands.DEFAULT_SHARDS, this field's default.",
    )
    airflow_retry_delay_s: float = Field(
        default=30.0,
        gt=0,
        description="First retry delay of every DAG task, in seconds (doubling, at most 10 min); the tests use 1.",
    )
    rerank_max_body_bytes: int = Field(
        default=1 << 20,
        ge=1,
        description="A movielens_rerank trigger with a larger body gets 413 from the Airflow API server.",
    )
    train_preset: str = Field(default="full", description="`make run`: the model preset movielens_train trains.")
    train_split: str = Field(default=DEFAULT_TRAIN_SPLIT, description="`make run`: the gate's holdout.")
    no_serve: bool = Field(default=False, description="`make run`: 1 stops after publishing instead of serving.")
    airflow_host: str = Field(default="127.0.0.1", description="`make airflow`: where the Airflow UI listens.")
    airflow_stop_timeout: int = Field(
        default=20, ge=1, description="`make airflow`: seconds from the first stop signal until SIGKILL."
    )
    airflow_schedules: bool = Field(
        default=False, description="`make airflow`: 1 leaves the scheduled DAGs as they were instead of pausing them."
    )


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **values: object) -> SettingsT:
    """``cls()`` from the environment; a bad value is one ``ConfigError`` line naming its variable."""
    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(settings_problem(cls, exc)) from exc


def settings_problem(cls: type[BaseSettings], exc: ValidationError) -> str:
    """``invalid RECSYS_API_* setting RECSYS_API_POOL_SIZE: Input should be ...`` for the first bad field."""
    prefix = cls.model_config.get("env_prefix", "")
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    name = f"{prefix}{field}".upper()
    # The value itself is left out: it may be a password or a URL with one.
    return f"invalid {prefix}* setting {name}: {error['msg']}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings(Settings)


@lru_cache(maxsize=1)
def get_airflow_settings() -> AirflowSettings:
    return load_settings(AirflowSettings)


def settings_classes() -> tuple[type[BaseSettings], ...]:
    """Every settings class, one per process kind (the README's settings table lists their fields)."""
    from recsys.api.settings import ApiSettings

    return (Settings, ApiSettings, AirflowSettings)


def setting_fields() -> dict[str, tuple[type[BaseSettings], str]]:
    """``{"RECSYS_API_PORT": (ApiSettings, "port"), ...}``: each environment variable and its field."""
    return {
        f"{cls.model_config.get('env_prefix', '')}{name}".upper(): (cls, name)
        for cls in settings_classes()
        for name in cls.model_fields
    }
