"""Each API token has its own idempotency keys: two clients' same key are two submissions, never a probe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import RecordingPublisher
from tests.unit.intake.test_http import MAX, body, limiter
from worker.intake.http import create_app
from worker.intake.library import Applyq

A, B = "token-of-client-a-0123456789", "token-of-client-b-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(sessions: sessionmaker[Session]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Applyq(sessions, RecordingPublisher()), [SecretStr(A), SecretStr(B)], limiter=limiter(), max_body_bytes=MAX
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://applyq.test") as c:
        yield c


async def post(client: httpx.AsyncClient, token: str, **overrides: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "application-1"}
    return await client.post("/submissions", json=body(**overrides), headers=headers)


@pytest.mark.anyio
async def test_two_tokens_with_one_key_get_two_submissions_and_each_its_own_replay(client: httpx.AsyncClient) -> None:
    a, b = await post(client, A), await post(client, B, job_id="ok--job-2")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]

    replay_a, replay_b = await post(client, A), await post(client, B, job_id="ok--job-2")
    assert (replay_a.status_code, replay_a.headers["Idempotent-Replayed"]) == (200, "true")
    assert (replay_a.json()["id"], replay_b.json()["id"]) == (a.json()["id"], b.json()["id"])


@pytest.mark.anyio
async def test_a_token_cannot_read_another_tokens_submission_by_its_key(client: httpx.AsyncClient) -> None:
    created = await post(client, A)
    as_a = await client.get("/submissions/application-1", headers={"Authorization": f"Bearer {A}"})
    as_b = await client.get("/submissions/application-1", headers={"Authorization": f"Bearer {B}"})
    assert (as_a.status_code, as_a.json()["id"]) == (200, created.json()["id"])
    assert as_b.status_code == 404
