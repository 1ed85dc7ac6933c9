"""Build the long-lived objects (engine, sessions, adapters, Celery app) from settings."""

from __future__ import annotations

import httpx

from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory
from worker.db.heartbeats import Heartbeater
from worker.providers import build_adapters
from worker.runtime.broker import resolve_broker_url
from worker.runtime.pipeline import Runtime
from worker.states import Provider
from worker.traffic.limiter import AdaptiveParams, RedisLimiter, redis_client
from worker.traffic.limits import provider_key
from worker.traffic.signals import Traffic

__all__ = ["build_runtime", "build_traffic"]


def build_runtime(
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
    pool_size: int | None = None,
    broker_url: str | None = None,
) -> Runtime:
    """Everything one worker process needs to run attempts (traffic control shares the broker's Redis)."""
    size = pool_size or settings.worker_concurrency
    engine = create_engine(settings.database_url, pool_size=min(size, 32), pooler=settings.database_pooler)
    sessions = create_session_factory(engine)
    return Runtime(
        settings=settings,
        sessions=sessions,
        adapters=build_adapters(settings, transport, max_connections=max(size, 10)),
        heartbeat=Heartbeater(sessions, "worker").beat,
        traffic=build_traffic(settings, broker_url) if settings.traffic_control else Traffic(),
    )


def build_traffic(settings: Settings, broker_url: str | None) -> Traffic:
    """The Redis limiter with the configured limits."""
    client = redis_client(broker_url or resolve_broker_url(settings))
    api_keys = {
        Provider.KOMBO: settings.kombo_api_key,
        Provider.STACKONE: settings.stackone_api_key,
        Provider.CELPER: settings.celper_api_key,
    }
    names = {provider: provider_key(provider, key.get_secret_value()) for provider, key in api_keys.items()}
    limiter = RedisLimiter(client, AdaptiveParams(hold_s=settings.hold_probe_s))
    return Traffic(limiter, settings.limit_specs, names)
