"""Build the long-lived objects (engine, sessions, adapters, Celery app) from settings."""

from __future__ import annotations

import httpx

from worker.config import Settings
from worker.db import create_engine, create_session_factory
from worker.health import Heartbeater
from worker.pipeline import Runtime, utcnow
from worker.providers import build_adapters

__all__ = ["build_runtime"]


def build_runtime(
    settings: Settings, *, transport: httpx.BaseTransport | None = None, pool_size: int | None = None
) -> Runtime:
    """Everything one worker process needs to run attempts."""
    size = pool_size or settings.worker_concurrency
    engine = create_engine(settings.database_url, pool_size=min(size, 32))
    sessions = create_session_factory(engine)
    return Runtime(
        settings=settings,
        sessions=sessions,
        adapters=build_adapters(settings, transport, max_connections=max(size, 10)),
        heartbeat=Heartbeater(sessions, "worker", utcnow).beat,
    )
