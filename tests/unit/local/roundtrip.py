"""Helpers: a real adapter's request, answered in-process by the sandbox, parsed by the same adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from worker.local.sandbox import SandboxConfig, create_app
from worker.providers.base import Adapter, Answer, Delivery
from worker.providers.celper import CelperAdapter
from worker.providers.stackone import StackOneAdapter
from worker.schemas import SubmissionIn

BASE = "http://sandbox.test"


@dataclass
class Roundtrip:
    """One request as the adapter built it, the sandbox's response, and what the adapter made of it."""

    request: httpx.Request
    response: httpx.Response
    answer: Answer


class Box:
    """A sandbox app behind httpx's ASGI transport, with adapters configured with its keys."""

    def __init__(self, client: httpx.AsyncClient, config: SandboxConfig) -> None:
        self.client = client
        unsent = httpx.Client(base_url=BASE + "/")
        self.stackone = StackOneAdapter(unsent, config.stackone_api_key)
        self.celper = CelperAdapter(httpx.Client(base_url=BASE + "/v1/"), config.celper_api_key)

    async def send(self, adapter: Adapter, delivery: Delivery) -> Roundtrip:
        """Build the request with ``adapter``, let the sandbox answer it, parse the answer."""
        request = adapter.build_request(delivery)
        response = await self.client.send(request)
        await response.aread()
        return Roundtrip(request, response, adapter.parse(response))

    async def get(self, path: str, **params: str) -> Any:
        """GET a control endpoint's JSON."""
        response = await self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()


@asynccontextmanager
async def sandbox(config: SandboxConfig | None = None) -> AsyncIterator[Box]:
    """A fresh in-process sandbox."""
    config = config or SandboxConfig(hang_s=0.05)
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Box(client, config)


def delivery(data: dict[str, Any], key: str = "applyq-key-1") -> Delivery:
    """A delivery of the submission ``data`` with the provider idempotency key ``key``."""
    return Delivery("sub-1", key, SubmissionIn.model_validate(data))
