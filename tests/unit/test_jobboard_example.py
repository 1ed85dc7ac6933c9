"""The example job board in-process (SQLite, httpx.ASGITransport): apply in one transaction, signed webhooks."""

from __future__ import annotations

import html
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from examples.jobboard.app import JobBoard, create_app
from examples.jobboard.form import SOMETHING_ELSE
from examples.jobboard.models import Application, Base
from tests.conftest import NOW, RecordingPublisher
from worker.db.models import Submission
from worker.intake.library import Applyq
from worker.webhooks.events import SIGNATURE_HEADER, encode_body, event_payload, sign

SECRET = "whsec-example"
FORM = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def board(sessions: sessionmaker[Session], publisher: RecordingPublisher) -> AsyncIterator[httpx.AsyncClient]:
    engine = sessions.kw["bind"]
    Base.metadata.create_all(engine)
    app = create_app(JobBoard(Applyq(sessions, publisher), engine, SecretStr(SECRET), "greenhouse:example"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://board.test") as client:
        yield client


async def apply(board: httpx.AsyncClient, job: str, **form: str) -> httpx.Response:
    return await board.post(f"/jobs/{job}", data={**FORM, **form})


async def send_outcome(
    board: httpx.AsyncClient, sessions: sessionmaker[Session], status: str, reason: str, *, minutes: int = 0
) -> httpx.Response:
    """What a worker would POST once the submission ended ``status`` for ``reason``."""
    with sessions() as session:
        row = session.scalars(sa.select(Submission)).one()
        row.status, row.outcome_reason = status, reason
        body = encode_body(event_payload(row, f"event-{status}-{minutes}", NOW + timedelta(minutes=minutes)))
    header = sign(SECRET, body, int(time.time()))
    return await board.post("/webhooks/applyq", content=body, headers={SIGNATURE_HEADER: header})


def alert(page: httpx.Response) -> list[str]:
    """The sentences of the form's alert, in order."""
    text = page.text
    block = text[text.index('id="error"') : text.index("</div>", text.index('id="error"'))]
    return [html.unescape(p.split("</p>")[0]) for p in block.split("<p>")[1:]]


def outcome(page: httpx.Response) -> tuple[str, bool]:
    text = page.text
    start = text.index('id="outcome"')
    return text[text.index(">", start) + 1 : text.index("</p>", start)], 'http-equiv="refresh"' in text


@pytest.mark.anyio
async def test_applying_stores_the_application_and_the_submission_together(
    board: httpx.AsyncClient, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    answer = await apply(board, "ok--backend-engineer")
    assert answer.status_code == 303
    page = await board.get(answer.headers["location"])
    assert outcome(page) == ("Your application is being sent to the employer.", True)
    with sessions() as session:
        application = session.scalars(sa.select(Application)).one()
        submission = session.get_one(Submission, application.submission_id)
    assert submission.idempotency_key == f"jobboard-application-{application.id}"
    assert submission.payload["metadata"] == {"application_id": application.id}
    assert publisher.published == [submission.id]


@pytest.mark.anyio
async def test_an_invalid_application_stores_nothing_and_says_what_to_fix_in_plain_words(
    board: httpx.AsyncClient, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    answer = await apply(board, "ok--backend-engineer", email="ada@example", last_name=" ")
    assert answer.status_code == 400
    assert alert(answer) == [
        "Please enter your last name.",
        "Please enter a valid email address, such as ada@example.com.",
    ]
    assert "candidate." not in answer.text and "@-sign" not in answer.text and "period" not in answer.text
    assert 'name="email" type="email"' in answer.text and 'value="ada@example"' in answer.text  # refilled
    assert answer.text.count('aria-invalid="true"') == 2
    with sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Application)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(Submission)) == 0
    assert publisher.published == []


@pytest.mark.anyio
async def test_the_form_asks_the_browser_to_check_what_it_can(board: httpx.AsyncClient) -> None:
    form = (await board.get("/jobs/ok--backend-engineer")).text
    assert '<input name="email" type="email" autocomplete="email"' in form
    assert form.count(" required") == 3 and 'id="error"' not in form


@pytest.mark.anyio
async def test_a_refusal_the_form_cannot_point_at_is_one_general_sentence_and_a_log_line(
    sessions: sessionmaker[Session], publisher: RecordingPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sessions.kw["bind"]
    Base.metadata.create_all(engine)
    app = create_app(JobBoard(Applyq(sessions, publisher), engine, SecretStr(SECRET), integration_id=""))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://board.test") as board:
        answer = await apply(board, "ok--backend-engineer")
    assert (answer.status_code, alert(answer)) == (400, [SOMETHING_ELSE])
    [record] = [r for r in caplog.records if r.name == "jobboard"]
    assert record.getMessage() == "applyq refused an application for integration_id"  # the path, never the values


@pytest.mark.anyio
async def test_a_signed_webhook_shows_the_outcome_once_and_in_order(
    board: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    page_url = (await apply(board, "closed--product-designer")).headers["location"]
    assert (await send_outcome(board, sessions, "terminal", "job_closed", minutes=2)).status_code == 200
    assert outcome(await board.get(page_url)) == ("This job is closed.", False)
    assert (await send_outcome(board, sessions, "terminal", "job_closed", minutes=2)).status_code == 200  # again
    assert (await send_outcome(board, sessions, "parked", "invalid_input", minutes=1)).status_code == 200  # older
    assert outcome(await board.get(page_url)) == ("This job is closed.", False)


@pytest.mark.anyio
async def test_an_unsigned_or_forged_webhook_is_refused(board: httpx.AsyncClient) -> None:
    body = b'{"id":"e1"}'
    forged = sign("not-the-secret", body, int(time.time()))
    assert (await board.post("/webhooks/applyq", content=body)).status_code == 400
    assert (await board.post("/webhooks/applyq", content=body, headers={SIGNATURE_HEADER: forged})).status_code == 400
