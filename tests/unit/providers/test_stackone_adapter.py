"""The StackOne adapter: Basic auth, x-account-id, a real User-Agent, the body, and every kind of answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from worker.providers.base import Accepted, Delivery, ErrorKind, ProviderError
from worker.providers.stackone import DEFAULT_RETRY_AFTER_S, StackOneAdapter
from worker.schemas import SubmissionIn

Handler = Callable[[httpx.Request], httpx.Response]
KEY = "stackone-secret-key"
CV = base64.b64encode(b"%PDF-1.4 cv").decode()


def stackone_submission(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "provider": "stackone",
        "integration_id": "lever:45355976281015164504",
        "job_id": "job-123",
        "idempotency_key": "key-1",
        "candidate": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    }
    data.update(overrides)
    return data


def deliver(handler: Handler, **overrides: Any) -> Accepted | ProviderError:
    client = httpx.Client(base_url="https://api.stackone.test/", transport=httpx.MockTransport(handler))
    delivery = Delivery("sub-1", "applyq-k", SubmissionIn.model_validate(stackone_submission(**overrides)))
    answer, _ = StackOneAdapter(client, KEY).deliver(delivery)
    return answer


def error_body(status: int, **extra: Any) -> dict[str, Any]:
    return {"statusCode": status, "message": "m", "timestamp": "2026-11-22T12:00:00.000Z", **extra}


def created(request: httpx.Request) -> httpx.Response:
    body = {"statusCode": 201, "message": "Record created successfully.", "timestamp": "2026-11-22T12:00:00.000Z"}
    return httpx.Response(201, json={**body, "data": {"id": "so-1", "remote_id": "ats-9"}})


def test_the_request_carries_basic_auth_account_user_agent_and_the_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return created(request)

    candidate = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0000",
        "cv": {"name": "cv.pdf", "data": CV},
    }
    deliver(handler, candidate=candidate)

    [request] = seen
    assert (request.method, str(request.url)) == ("POST", "https://api.stackone.test/unified/ats/applications")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert request.headers["x-account-id"] == "45355976281015164504"  # an old-style "lever:" prefix is stripped
    assert request.headers["user-agent"].startswith("applyq/")
    assert json.loads(request.content) == {
        "job_id": "job-123",
        "candidate": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone_numbers": [{"phone": "+44 20 7946 0000"}],
        },
        "documents": [
            {"name": "cv.pdf", "content": CV, "category": {"value": "resume"}, "file_format": {"value": "pdf"}}
        ],
    }


def test_a_cv_of_an_unusual_type_is_sent_without_a_file_format() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return created(request)

    cv = {"name": "cv.bin", "data": CV, "content_type": "application/octet-stream"}
    deliver(handler, candidate={"first_name": "A", "last_name": "B", "email": "a@b.co", "cv": cv})

    assert "file_format" not in seen[0]["documents"][0]


def test_success_is_201_with_stackone_and_ats_ids() -> None:
    assert deliver(created) == Accepted(201, "so-1", "ats-9")


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (201, b'{"statusCode": 201, "message": "ok"}'),
        (200, json.dumps({"statusCode": 201, "message": "x", "data": {"id": "1"}}).encode()),
        (502, b"<html>Bad Gateway</html>"),
        (500, b'{"statusCode": 500, "mess'),
        (404, b'{"error": "not stackone"}'),
        (502, b""),
    ],
)
def test_answers_not_in_stackones_format_become_bad_responses(status: int, content: bytes) -> None:
    answer = deliver(lambda r: httpx.Response(status, content=content))

    assert isinstance(answer, ProviderError)
    assert (answer.kind, answer.http_status, answer.code) == (ErrorKind.BAD_RESPONSE, status, None)


def test_an_error_keeps_provider_errors_error_code_and_data_as_details() -> None:
    ats_error = {
        "status": 422,
        "url": "https://api.lever.co/v1/opportunities?api_key=leaky&perform_as=u1",
        "raw": {"message": "email is invalid", "field": "emails[0]"},
        "headers": {"Content-Type": "application/json", "x-request-id": "r-1", "Set-Cookie": "s=1", "x-api-key": "k"},
    }
    data = {"statusCode": 422, "message": "Unprocessable", "headers": {"authorization": "Bearer t", "date": "d"}}
    body = error_body(400, errorCode="ValidationError", provider_errors=[ats_error, "junk"], data=data)

    answer = deliver(lambda r: httpx.Response(400, json=body))

    assert isinstance(answer, ProviderError)
    assert (answer.kind, answer.http_status, answer.code, answer.label) == (ErrorKind.API_ERROR, 400, None, "HTTP_400")
    assert (answer.title, answer.message) == ("ValidationError", "m")
    assert answer.details == {
        "provider_errors": [
            {
                "status": 422,
                "url": "https://api.lever.co/v1/opportunities",
                "raw": {"message": "email is invalid", "field": "emails[0]"},
                "headers": {"Content-Type": "application/json", "x-request-id": "r-1"},
            },
        ],
        "errorCode": "ValidationError",
        "data": {"statusCode": 422, "message": "Unprocessable", "headers": {"date": "d"}},
    }


def test_an_error_without_extras_has_no_details() -> None:
    answer = deliver(lambda r: httpx.Response(409, json=error_body(409, provider_errors=None)))

    assert isinstance(answer, ProviderError) and answer.details is None


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [(429, "7", 7.0), (408, "3", 3.0), (429, None, DEFAULT_RETRY_AFTER_S), (408, None, 60.0), (503, None, None)],
)
def test_retry_after_is_read_and_defaults_to_60_s_on_408_and_429(
    status: int, header: str | None, expected: float | None
) -> None:
    headers = {"Retry-After": header} if header else {}
    answer = deliver(lambda r: httpx.Response(status, json=error_body(status), headers=headers))

    assert isinstance(answer, ProviderError) and answer.retry_after_s == expected


def test_the_api_key_and_its_basic_credentials_never_reach_the_attempt() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        raw = {"message": f"bad key {KEY}", "echo": auth}
        return httpx.Response(401, json=error_body(401, message=f"refused {auth}", provider_errors=[{"raw": raw}]))

    answer = deliver(echo)

    assert isinstance(answer, ProviderError)
    dump = json.dumps([answer.message, answer.title, answer.details])
    credentials = base64.b64encode(f"{KEY}:".encode()).decode()
    assert KEY not in dump and credentials not in dump
    assert dump.count("[redacted]") == 3


def test_transport_failures_are_values() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    answer = deliver(handler)
    assert isinstance(answer, ProviderError) and answer.kind is ErrorKind.TIMEOUT


def test_a_cv_given_as_a_url_is_refused_before_anything_is_stored() -> None:
    cv = {"name": "cv.pdf", "url": "https://files.example.com/cv.pdf"}
    data = stackone_submission(candidate={"first_name": "A", "last_name": "B", "email": "a@b.co", "cv": cv})

    with pytest.raises(ValidationError, match="base64 'data'"):
        SubmissionIn.model_validate(data)


@pytest.mark.parametrize("missing", ["integration_id", "job_id"])
def test_account_and_job_are_required(missing: str) -> None:
    data = stackone_submission()
    del data[missing]

    with pytest.raises(ValidationError, match=missing):
        SubmissionIn.model_validate(data)
