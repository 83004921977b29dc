"""The API's settings, from ``RECSYS_API_*`` environment variables.

Kept apart from ``recsys.config.Settings`` because the API connects as a different,
read-only role and has its own limits; the database location is shared with the rest of
the library when no API-specific URL is given. The Airflow plugin reads the same class
(it serves the same API and reads as the same role).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.config import load_settings


class ServeSettings(BaseSettings):
    """Where ``recsys serve`` listens: read apart so that building the CLI's parser (its
    ``--host``/``--port``/``--workers`` defaults) does not validate every API setting."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_API_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address `recsys serve` and `make serve` listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `recsys serve` and `make serve` listen on.")
    workers: int = Field(default=1, ge=1, le=64, description="API worker processes of `recsys serve`.")


class ApiSettings(ServeSettings):
    database_url: str | None = Field(
        default=None,
        description="URL the API connects with (a read-only role). Unset: RECSYS_DATABASE_URL or the managed "
        "server, with the user replaced by `db_role`.",
    )
    db_role: str = Field(
        default="recsys_api",
        description="Login role used when database_url is unset (created by sql/0004.api.sql); empty keeps "
        "the library URL's user.",
    )
    db_password: SecretStr | None = Field(default=None, description="Password for db_role, if the server wants one.")
    pool_size: int = Field(default=4, ge=1, le=100, description="Connections kept open per worker process.")
    max_overflow: int = Field(default=8, ge=0, le=100, description="Extra connections per worker under bursts.")
    pool_timeout_s: float = Field(default=2.0, gt=0, description="Wait for a free connection before a 503.")
    connect_timeout_s: int = Field(default=2, ge=1, le=60, description="TCP/TLS connect timeout (libpq, >= 2 s).")
    statement_timeout_ms: int = Field(default=2000, ge=10, description="Server-side limit on every API query.")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, description="Larger request bodies get 413.")
    rate_limit: str = Field(
        default="300/second",
        description="Per client address and worker, `limits` syntax (e.g. '300/second;5000/minute'); empty disables.",
    )
    rate_limit_storage: str = Field(
        default="memory://", description="`limits` storage URI; redis://... shares counters across workers."
    )
    docs: bool = Field(default=True, description="Serve the OpenAPI UI at /docs and the spec at /openapi.json.")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="A connection must send a complete request head (request line and headers) within this many "
        "seconds of opening, or of a later request's first byte; else `recsys serve` closes it.",
    )
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="A request body must arrive in full within this many seconds of its head.",
    )
    keep_alive_s: int = Field(default=5, ge=1, le=600, description="Idle time between requests before a close.")
    max_connections_per_client: int = Field(
        default=128,
        ge=1,
        description="Open connections per client address and worker; more get a JSON 429 and are closed. "
        "Trusted proxies are exempt.",
    )
    max_concurrency: int = Field(
        default=512, ge=1, description="Requests in progress per worker; beyond this a new request gets a JSON 503."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (or `*`) whose X-Forwarded-For / X-Forwarded-Proto are "
        "believed; empty (the default): forwarded headers are ignored and the peer address is the client.",
    )

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            parse_many(value)  # raises ValueError with the bad part
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _parse_trusted_proxies(cls, value: str) -> str:
        for item in _split(value):
            if item != "*":
                ipaddress.ip_network(item, strict=False)  # raises ValueError naming the bad address
        return value

    def trusted_proxy_list(self) -> list[str]:
        return _split(self.trusted_proxies)

    def resolved_database_url(self) -> str:
        """The URL to connect with: explicit, or the library's with the API role swapped in."""
        if self.database_url:
            return self.database_url
        from recsys.config import get_settings
        from recsys.db.engine import database_url

        return self.as_read_role(get_settings().database_url or database_url())

    def as_read_role(self, url: str) -> str:
        """``url`` with ``db_role`` (and ``db_password``) as its login; an empty role keeps the user."""
        from recsys.db import urls

        password = self.db_password.get_secret_value() if self.db_password else None
        return urls.as_role(url, self.db_role, password)


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return load_settings(ApiSettings)
