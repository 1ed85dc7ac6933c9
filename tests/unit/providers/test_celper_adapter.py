"""The Celper adapter: X-API-Key, one Idempotency-Key per submission, the flat body, every kind of answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, RecordingPublisher
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory
from worker.db.models import Submission
from worker.intake.enqueue import enqueue, validate_all
from worker.providers import build_adapters
from worker.providers.base import Accepted, Delivery, ErrorKind, ProviderError
from worker.providers.celper import CelperAdapter
from worker.runtime.pipeline import Runtime, process_submission
from worker.schemas import SubmissionIn

Handler = Callable[[httpx.Request], httpx.Response]
KEY = "celp_00112233445566778899aabbccddeeff"
RATE_HEADERS = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1795000000"}


def celper_submission(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "provider": "celper",
        "job_id": "jp_7f3a",
        "idempotency_key": "board-981",
        "candidate": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    }
    data.update(overrides)
    return data


def text_cv(text: str = "Ada Lovelace\nAnalyst", content_type: str = "text/plain") -> dict[str, str]:
    return {"name": "cv.txt", "content_type": content_type, "data": base64.b64encode(text.encode()).decode()}


def deliver(handler: Handler, **overrides: Any) -> Accepted | ProviderError:
    client = httpx.Client(base_url="https://api.celper.test/v1/", transport=httpx.MockTransport(handler))
    delivery = Delivery("sub-1", "applyq-key-1", SubmissionIn.model_validate(celper_submission(**overrides)))
    answer, _ = CelperAdapter(client, KEY).deliver(delivery)
    return answer


def created(request: httpx.Request) -> httpx.Response:
    body = {"success": True, "data": {"id": "cand_1", "status": "new"}, "requestId": "req-1"}
    return httpx.Response(201, json=body, headers={"X-Request-Id": "req-1", **RATE_HEADERS})


def failure(status: int, code: str, headers: dict[str, str] | None = None, **extra: Any) -> Handler:
    body = {"success": False, "error": code, "message": "m", "requestId": "req-2", **extra}
    return lambda request: httpx.Response(status, json=body, headers={**RATE_HEADERS, **(headers or {})})


def test_the_request_carries_key_idempotency_key_and_the_flat_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return created(request)

    candidate = {"first_name": "Ada", "last_name": "L", "email": "ada@example.com", "phone": "+370 600 00000"}
    deliver(handler, candidate={**candidate, "cv": text_cv()})

    [request] = seen
    assert (request.method, str(request.url)) == ("POST", "https://api.celper.test/v1/candidates")
    assert request.headers["x-api-key"] == KEY
    assert request.headers["idempotency-key"] == "applyq-key-1"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "jobPositionId": "jp_7f3a",
        "firstName": "Ada",
        "lastName": "L",
        "email": "ada@example.com",
        "phone": "+370 600 00000",
        "cvText": "Ada Lovelace\nAnalyst",
    }


def test_success_is_recorded_with_the_candidate_id_request_id_and_rate_limit_headers() -> None:
    answer = deliver(created)

    assert isinstance(answer, Accepted)
    assert (answer.http_status, answer.application_id, answer.remote_id, answer.request_id) == (
        201,
        "cand_1",
        "cand_1",
        "req-1",
    )
    assert answer.headers["x-ratelimit-reset"] == "1795000000"


def test_an_error_is_routed_on_its_code_and_keeps_request_id_and_rate_limit_headers() -> None:
    answer = deliver(failure(429, "RATE_LIMITED", {"Retry-After": "45"}))

    assert isinstance(answer, ProviderError)
    assert (answer.kind, answer.code, answer.http_status, answer.request_id) == (
        ErrorKind.API_ERROR,
        "RATE_LIMITED",
        429,
        "req-2",
    )
    assert answer.retry_after_s == 45.0
    assert {k: answer.headers[k] for k in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")} == {
        "x-ratelimit-limit": "20",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "1795000000",
    }


def test_validation_field_errors_are_kept_as_details() -> None:
    fields = [{"field": "email", "message": "is not valid"}]
    answer = deliver(failure(400, "VALIDATION_ERROR", details=fields))

    assert isinstance(answer, ProviderError) and answer.details == {"details": fields}


def test_the_request_id_header_stands_in_for_a_missing_body_field() -> None:
    body = {"success": False, "error": "NOT_FOUND", "message": "m"}
    answer = deliver(lambda r: httpx.Response(404, json=body, headers={"X-Request-Id": "hdr-1"}))

    assert isinstance(answer, ProviderError) and answer.request_id == "hdr-1"


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (201, b'{"success": false}'),
        (200, b"not json"),
        (503, b"<html>503</html>"),
        (500, b'{"success": false, "error": "INTERN'),
        (409, b'{"error": {"code": "X"}}'),
        (502, b""),
    ],
)
def test_answers_not_in_celpers_format_become_bad_responses(status: int, content: bytes) -> None:
    answer = deliver(lambda r: httpx.Response(status, content=content))

    assert isinstance(answer, ProviderError)
    assert (answer.kind, answer.http_status, answer.code) == (ErrorKind.BAD_RESPONSE, status, None)


def test_the_api_key_never_reaches_the_attempt() -> None:
    answer = deliver(failure(401, "UNAUTHORIZED", message=f"key {KEY} is revoked"))

    assert isinstance(answer, ProviderError)
    assert KEY not in answer.message and "[redacted]" in answer.message


# --- what a Celper submission may carry -----------------------------------------------------------


def test_a_text_cv_becomes_cv_text_and_other_cvs_are_refused_before_anything_is_stored() -> None:
    SubmissionIn.model_validate(celper_submission(candidate={"first_name": "A", "last_name": "B", "email": "a@b.co"}))
    pdf = {"name": "cv.pdf", "data": base64.b64encode(b"%PDF-1.4").decode()}
    url = {"name": "cv.txt", "content_type": "text/plain", "url": "https://files.example.com/cv.txt"}
    too_big = text_cv("x" * (100 * 1024 + 1))
    latin1 = {
        "name": "cv.txt",
        "content_type": "text/plain",
        "data": base64.b64encode("Šiauliai".encode("cp1257")).decode(),
    }

    for cv, problem in [(pdf, "as text"), (url, "'data'"), (too_big, "100 KB"), (latin1, "UTF-8")]:
        data = celper_submission(candidate={"first_name": "A", "last_name": "B", "email": "a@b.co", "cv": cv})
        with pytest.raises(ValidationError, match=problem):
            SubmissionIn.model_validate(data)


def test_an_integration_id_is_refused_for_celper() -> None:
    with pytest.raises(ValidationError, match="integration_id"):
        SubmissionIn.model_validate(celper_submission(integration_id="x"))


# --- one key for every attempt ------------------------------------------------------------------


def test_every_attempt_of_a_submission_sends_the_same_stored_idempotency_key(
    settings: Settings, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    keys: list[str] = []
    answers: list[Handler] = [failure(500, "INTERNAL_ERROR"), failure(429, "RATE_LIMITED"), created]

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 2:
            raise httpx.ReadTimeout("slow", request=request)
        return answers[min(len(keys), 3) - 1](request)

    settings = settings.model_copy(update={"celper_api_key": SecretStr(KEY)})
    now = [NOW]
    sessions = create_session_factory(create_engine(settings.database_url, clock=lambda: now[0]))
    runtime = Runtime(settings, sessions, build_adapters(settings, httpx.MockTransport(handler)))
    [stored] = enqueue(sessions, publisher, validate_all([celper_submission()]), NOW)
    for _ in range(3):
        process_submission(runtime, stored.submission.id)
        now[0] += timedelta(hours=1)  # the database's clock: the retry is due

    with sessions() as session:
        row = session.get_one(Submission, stored.submission.id)
        assert row.status == "succeeded"
        assert keys == [row.provider_idempotency_key] * 3
    assert keys[0] != "board-981", "the job board's key is not sent as is"
