"""Settings from the environment (prefix ``OCORE_``) and an optional ``.env`` file.

With nothing set, ocore runs embedded: a SQLite file and generated secrets in
the data directory, jobs and events in-process.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "ocore"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OCORE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    redis_url: str | None = None

    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_private_key: SecretStr | None = None
    jwt_issuer: str = "ocore"
    jwt_audience: str = "ocore-api"
    jwt_default_ttl_seconds: int = 12 * 3600
    # Tokens beyond this size are refused before any parsing work.
    jwt_max_length: int = 8192

    secret_key: SecretStr | None = None

    # Jobs: a running job renews its lease; one not renewed in time is retried elsewhere.
    job_lease_seconds: float = Field(default=60, gt=0)
    reconcile_interval_seconds: float = Field(default=15, gt=0)
    # A queued job whose dispatch is this old without being picked up is dispatched again.
    job_redispatch_seconds: float = Field(default=300, gt=0)
    worker_concurrency: int = Field(default=8, ge=1)
    # How often running instances are probed (/web/health) and their score refreshed.
    health_check_interval_seconds: float = Field(default=60, gt=0)
    queue_name: str = "ocore:jobs"

    # How users reach this API (share links are built from it).
    public_url: str = "http://127.0.0.1:8000"
    # Instances get <slug>.<base_domain> when set (a wildcard DNS record points at the hosts).
    base_domain: str | None = None
    # Host ports for instances: blocks of four (blue http, blue gevent, green http, green gevent).
    instance_port_min: int = Field(default=20000, ge=1024, le=65000)
    instance_port_max: int = Field(default=29999, ge=1028, le=65535)

    cors_origins: list[str] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    # Bounds every request body: webhooks of big pushes and uploads through share links fit.
    max_body_bytes: int = 16 * 1024 * 1024
    # The nginx share gateway (docs/share-gateway.md) asks ocore whether a share cookie
    # may fetch static assets, with this token; unset, that endpoint does not exist.
    share_gateway_token: SecretStr | None = None
    # How long nginx may reuse one such answer: a revoked link's static files
    # (never its pages or data) stay reachable about this long (shares/gateway.py).
    share_gateway_cache_seconds: int = Field(default=1, ge=0, le=60)

    # Prometheus metrics at /metrics, per process: scrape every API replica and worker.
    metrics_enabled: bool = True
    # When set, /metrics (and a worker's metrics port) answers only `Bearer <token>`.
    metrics_token: SecretStr | None = None
    # `ocore worker` serves no API: its metrics get a port of their own when this is set.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # OpenTelemetry traces over OTLP/HTTP; the endpoint is a base URL (…:4318). Unset,
    # the standard OTEL_EXPORTER_OTLP_* variables apply.
    otel_enabled: bool = False
    otel_service_name: str = "ocore"
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'ocore.db'}"

    @property
    def is_embedded_queue(self) -> bool:
        return self.redis_url is None

    @cached_property
    def effective_jwt_secret(self) -> str:
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return self._persisted_secret("jwt.secret")

    @cached_property
    def effective_secret_key(self) -> str:
        """Key material for secrets at rest (server keys, share secrets, neutralized values)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return self._persisted_secret("secret.key")

    def _persisted_secret(self, name: str) -> str:
        # Embedded mode generates its secrets once and keeps them beside the
        # database, so restarts keep tokens and encrypted columns valid.
        path = self.data_dir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        value = secrets.token_urlsafe(48)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value


def get_settings() -> Settings:
    return Settings()
