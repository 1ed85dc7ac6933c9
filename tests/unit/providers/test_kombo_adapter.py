from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import submission_dict
from worker.providers.base import Accepted, Delivery, ErrorKind, ProviderError
from worker.providers.kombo import KomboAdapter
from worker.schemas import SubmissionIn

Handler = Callable[[httpx.Request], httpx.Response]


def deliver(handler: Handler, **overrides: object) -> Accepted | ProviderError:
    client = httpx.Client(base_url="http://kombo.test/v1/", transport=httpx.MockTransport(handler))
    delivery = Delivery("sub-1", "applyq-k", SubmissionIn.model_validate(submission_dict(**overrides)))
    answer, latency_ms = KomboAdapter(client, "secret-key").deliver(delivery)
    assert latency_ms >= 0
    return answer


def envelope(code: str | None, **extra: object) -> dict[str, object]:
    return {
        "status": "error",
        "error": {"code": code, "title": "t", "message": "msg", "log_url": None, **extra},
    }


def test_the_request_carries_auth_integration_user_agent_and_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success", "data": {"id": "A1", "remote_id": "32"}})

    deliver(handler, candidate={"first_name": "Ada", "last_name": "L", "email": "a@example.com", "phone": "+1 5"})
    assert [r.url.path for r in seen] == [
        "/v1/ats/actions/ats_create_application",
        "/v1/ats/jobs/ok--job-1/applications",
    ]
    request = seen[1]
    assert request.url == "http://kombo.test/v1/ats/jobs/ok--job-1/applications"
    assert request.headers["authorization"] == "Bearer secret-key"
    assert request.headers["x-integration-id"] == "greenhouse:abc123"
    assert request.headers["user-agent"].startswith("applyq/")
    assert json.loads(request.content) == {
        "candidate": {
            "first_name": "Ada",
            "last_name": "L",
            "email_address": "a@example.com",
            "phone_number": "+1 5",
        }
    }


def test_success_records_ids_and_warnings() -> None:
    body = {"status": "success", "data": {"id": "A1", "remote_id": "32"}, "warnings": [{"message": "w1"}]}
    answer = deliver(lambda r: httpx.Response(200, json=body))
    assert answer == Accepted(200, "A1", "32", ("w1",))


def test_the_error_envelope_is_parsed() -> None:
    body = envelope("ATS.JOB_CLOSED", log_url="https://app.kombo.dev/x/logs?interactionId=1")
    answer = deliver(lambda r: httpx.Response(400, json=body))
    assert isinstance(answer, ProviderError)
    assert (answer.kind, answer.code, answer.http_status) == (ErrorKind.API_ERROR, "ATS.JOB_CLOSED", 400)
    assert answer.log_url == "https://app.kombo.dev/x/logs?interactionId=1"


def test_a_null_code_keeps_the_status_for_the_fallback() -> None:
    answer = deliver(lambda r: httpx.Response(503, json=envelope(None)))
    assert isinstance(answer, ProviderError)
    assert (answer.code, answer.http_status, answer.label) == (None, 503, "HTTP_503")


def test_retry_after_seconds_is_read() -> None:
    answer = deliver(
        lambda r: httpx.Response(429, json=envelope("PLATFORM.RATE_LIMIT_EXCEEDED"), headers={"Retry-After": "7"})
    )
    assert isinstance(answer, ProviderError) and answer.retry_after_s == 7.0


@pytest.mark.parametrize(
    ("status", "content", "ctype"),
    [
        (503, b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", "text/html"),
        (500, b'{"status": "error", "error": {"code": "PLAT', "application/json"),
        (502, b"", ""),
        (200, b"not json", "text/plain"),
        (200, b'{"status": "success"}', "application/json"),
        (400, b'["a list"]', "application/json"),
    ],
)
def test_bodies_that_are_not_kombo_json_become_bad_response(status: int, content: bytes, ctype: str) -> None:
    answer = deliver(lambda r: httpx.Response(status, content=content, headers={"content-type": ctype}))
    assert isinstance(answer, ProviderError)
    assert (answer.kind, answer.http_status, answer.code) == (ErrorKind.BAD_RESPONSE, status, None)
    assert f"HTTP {status}" in answer.message


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("slow"), ErrorKind.TIMEOUT),
        (httpx.WriteTimeout("slow"), ErrorKind.TIMEOUT),
        (httpx.ConnectTimeout("no route"), ErrorKind.CONNECT_ERROR),
        (httpx.ConnectError("refused"), ErrorKind.CONNECT_ERROR),
        (httpx.RemoteProtocolError("reset"), ErrorKind.CONNECTION_LOST),
        (httpx.ReadError("reset"), ErrorKind.CONNECTION_LOST),
    ],
)
def test_transport_failures_are_values_not_exceptions(exc: httpx.HTTPError, kind: ErrorKind) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    answer = deliver(handler)
    assert isinstance(answer, ProviderError) and answer.kind is kind


def test_the_api_key_never_appears_in_an_error() -> None:
    echo = lambda r: httpx.Response(401, text=f"bad key {r.headers['authorization']}")  # noqa: E731
    answer = deliver(echo)
    assert isinstance(answer, ProviderError)
    assert "secret-key" not in answer.message
    assert "[redacted]" in answer.message
