"""Fixtures of the sandbox tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openapi_core import OpenAPI

from tests.unit.local.kombo_sandbox import HANG_S, SPECS, Sandbox, running
from worker.local.sandbox import SandboxConfig


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def kombo_spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPECS / "kombo-openapi.json"))


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running(SandboxConfig(hang_s=HANG_S)) as box:
        yield box
