"""Provider adapters, one module per wire format, built from settings with an injectable transport."""

from __future__ import annotations

import httpx

from worker.config import Settings
from worker.providers.base import Accepted, Adapter, Answer, Delivery, ErrorKind, ProviderError
from worker.providers.celper import CelperAdapter
from worker.providers.kombo import KomboAdapter
from worker.providers.stackone import StackOneAdapter
from worker.providers.transport import ShardedTransport
from worker.states import Provider

__all__ = [
    "Accepted",
    "Adapter",
    "Answer",
    "Delivery",
    "ErrorKind",
    "ProviderError",
    "build_adapters",
]


def build_adapters(
    settings: Settings, transport: httpx.BaseTransport | None = None, max_connections: int = 100
) -> dict[Provider, Adapter]:
    """One adapter per provider, each with its own connection pools (``transport`` for tests)."""

    def client(base_url: str, provider: Provider) -> httpx.Client:
        return httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            timeout=settings.timeout_s(provider),
            transport=transport or ShardedTransport(max_connections),
            follow_redirects=False,
        )

    return {
        Provider.KOMBO: KomboAdapter(
            client(settings.kombo_base_url, Provider.KOMBO), settings.kombo_api_key.get_secret_value()
        ),
        Provider.STACKONE: StackOneAdapter(
            client(settings.stackone_base_url, Provider.STACKONE), settings.stackone_api_key.get_secret_value()
        ),
        Provider.CELPER: CelperAdapter(
            client(settings.celper_base_url, Provider.CELPER), settings.celper_api_key.get_secret_value()
        ),
    }
