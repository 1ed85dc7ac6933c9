"""Fixtures of the sandbox tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.local.kombo_sandbox import HANG_S, Sandbox, running
from worker.local.sandbox import SandboxConfig


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running(SandboxConfig(hang_s=HANG_S)) as box:
        yield box
