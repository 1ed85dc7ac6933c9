"""The HTTP API on a full application: a problem the provider cannot carry is a 422 pointing at the field."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.unit.intake.test_http import TOKEN, GatedPublisher, anyio_backend, assert_problem, body, limiter, post
from worker.db.models import Submission
from worker.intake.http import create_app
from worker.intake.library import Applyq

__all__ = ["anyio_backend"]  # the fixture this module borrows

PERSON = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}


@pytest.fixture
async def client(sessions: sessionmaker[Session]) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the default body limit (16 MiB), so that the provider's limits are what refuses a file."""
    publisher = GatedPublisher()
    publisher.release.set()
    app = create_app(Applyq(sessions, publisher), [SecretStr(TOKEN)], limiter=limiter(), max_body_bytes=16 << 20)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://applyq.test") as c:
        yield c


def celper(**overrides: Any) -> dict[str, Any]:
    return body(provider="celper", integration_id=None, **overrides)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("payload", "pointer", "detail"),
    [
        (celper(candidate={**PERSON, "cv": {"name": "cv.txt", "content_type": "text/plain",
                                            "data": base64.b64encode(b"x" * (100 * 1024 + 1)).decode()}}),
         "#/candidate/cv", "at most 100 KB"),
        (celper(screening_answers=[{"question_id": "q", "answer": "Yes"}]), "#/screening_answers", "no place"),
        (body(provider="stackone", integration_id="acc", candidate={**PERSON, "location": {"country": "GB",
                                                                                              "city": "Leeds"}}),
         "#/candidate/location/city", "only a country"),
        (body(attachments=[{"kind": "cv", "name": "cv.pdf"}]), "#/attachments/0", "exactly one of"),
    ],
)  # fmt: skip
async def test_what_the_provider_cannot_carry_is_a_422_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], payload: dict[str, Any], pointer: str, detail: str
) -> None:
    problem = assert_problem(await post(client, payload), 422, "/problems/invalid-submission")

    [error] = problem["errors"]
    assert error["pointer"] == pointer and detail in error["detail"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0
