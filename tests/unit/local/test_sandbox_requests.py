"""The Kombo sandbox checks requests like Kombo: the candidate's email, the body, the success shape."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData

from tests.unit.local.kombo_sandbox import (
    HEADERS,
    KEY,
    Sandbox,
    _null_in_nullable_enum,
    assert_matches_spec,
    candidate,
    running,
    shape,
)
from worker.local.sandbox import SandboxConfig
from worker.local.sandbox.kombo import CONCURRENCY_LIMIT

# --- the candidate's email ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("job_id", ["ok--job-1", "closed--job-3", "ratelimit--job-7", "applied--job-14"])
async def test_an_invalid_example_email_is_rejected_whatever_the_job(
    sandbox: Sandbox, kombo_spec: OpenAPI, job_id: str
) -> None:
    emails = ("ada@Invalid.Example", "ada@invalid.example")

    answers = [await sandbox.apply(job_id, email=email) for email in emails]

    for response in answers:
        assert (response.status_code, shape(response)) == (400, "REMOTE.INPUT_INVALID")
        assert_matches_spec(kombo_spec, response)
    error = answers[0].json()["error"]
    assert error["title"] == "The remote system returned errors."
    assert "candidate.email_address" in error["message"]


@pytest.mark.anyio
async def test_fixing_the_email_lets_the_application_through(sandbox: Sandbox) -> None:
    rejected = await sandbox.apply("invalid--job-3", email="ada@invalid.example")
    fixed = await sandbox.apply("invalid--job-3", email="ada@example.com")

    assert (rejected.status_code, fixed.status_code) == (400, 200)


# --- request checks ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"X-Integration-Id": "greenhouse:x"}, 401, "PLATFORM.AUTHENTICATION_INVALID"),
        ({**HEADERS, "Authorization": "Bearer wrong"}, 401, "PLATFORM.AUTHENTICATION_INVALID"),
        ({**HEADERS, "Authorization": f"Basic {KEY}"}, 401, "PLATFORM.AUTHENTICATION_INVALID"),
        ({"Authorization": f"Bearer {KEY}"}, 404, "PLATFORM.INTEGRATION_NOT_FOUND"),
        ({**HEADERS, "X-Integration-Id": " "}, 404, "PLATFORM.INTEGRATION_NOT_FOUND"),
    ],
    ids=["no-auth", "wrong-key", "wrong-scheme", "no-integration", "blank-integration"],
)
async def test_bad_credentials_or_no_integration_are_refused_before_the_script_runs(
    sandbox: Sandbox, kombo_spec: OpenAPI, headers: dict[str, str], status: int, code: str
) -> None:
    refused = await sandbox.apply("ratelimit--job-7", headers=headers)
    scripted = await sandbox.apply("ratelimit--job-7")

    assert (refused.status_code, shape(refused)) == (status, code)
    assert_matches_spec(kombo_spec, refused)
    assert refused.headers["concurrency-limit"] == "30"
    assert scripted.status_code == 429, "a refused request does not count as an attempt"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, '"candidate" is required'),
        ({"candidate": "Ada"}, '"candidate" is required'),
        ([candidate()], '"candidate" is required'),
        ({"candidate": {"last_name": "L", "email_address": "a@b.example"}}, '"candidate.first_name"'),
        ({"candidate": {"first_name": "A", "last_name": " ", "email_address": "a@b.example"}}, "last_name"),
        ({"candidate": {"first_name": "A", "last_name": "L"}}, '"candidate.email_address" is required'),
        ({"candidate": {"first_name": "A", "last_name": "L", "email_address": "nobody"}}, "email address"),
    ],
)
async def test_a_body_without_the_required_candidate_fields_is_invalid_input(
    sandbox: Sandbox, kombo_spec: OpenAPI, body: Any, problem: str
) -> None:
    response = await sandbox.apply("ok--job-1", body=body)

    assert (response.status_code, shape(response)) == (400, "PLATFORM.INPUT_INVALID")
    assert problem in response.json()["error"]["message"]
    assert_matches_spec(kombo_spec, response)


@pytest.mark.anyio
async def test_a_body_that_is_not_json_is_invalid_input_and_logged_as_null(sandbox: Sandbox) -> None:
    response = await sandbox.apply("ok--job-1", content=b"first_name=Ada")

    assert (response.status_code, shape(response)) == (400, "PLATFORM.INPUT_INVALID")
    [record] = await sandbox.get("/_sandbox/requests", job_id="ok--job-1")
    assert record["body"] is None


def test_the_test_request_itself_is_valid_by_kombos_spec(kombo_spec: OpenAPI) -> None:
    request = MockRequest(
        "https://api.kombo.dev",
        "post",
        "/v1/ats/jobs/ok--job-1/applications",
        headers=HEADERS,
        data=json.dumps(candidate()).encode(),
        content_type="application/json",
    )

    kombo_spec.validate_request(request)


def test_kombos_own_minimal_error_example_fails_strict_validation(kombo_spec: OpenAPI) -> None:
    # The spec types error.code as [string, null] but leaves null out of its enum, so its own
    # "Minimal Error Response" example is invalid; assert_matches_spec forgives exactly that.
    request = MockRequest("https://api.kombo.dev", "post", "/v1/ats/jobs/x/applications")
    minimal = {"status": "error", "error": {"code": None, "title": None, "message": "m", "log_url": None}}
    response = MockResponse(json.dumps(minimal).encode(), status_code=503, content_type="application/json")

    with pytest.raises(InvalidData) as raised:
        kombo_spec.validate_response(request, response)

    errors = getattr(raised.value.__cause__, "schema_errors", [])
    assert [list(error.absolute_path) for error in errors] == [["error", "code"]]
    assert all(_null_in_nullable_enum(error) for error in errors)


# --- the success body -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_success_echoes_the_candidate_and_job_with_generated_ids(sandbox: Sandbox) -> None:
    first = (await sandbox.apply("ok--job-1")).json()
    second = (await sandbox.apply("ok--job-2", email="grace@example.com")).json()

    data = first["data"]
    assert (data["job_id"], data["job"]["id"], data["outcome"]) == ("ok--job-1", "ok--job-1", "PENDING")
    assert (data["candidate"]["first_name"], data["candidate"]["last_name"]) == ("Ada", "Lovelace")
    assert data["candidate"]["email_addresses"] == [{"email_address": "ada@example.com", "type": "PERSONAL"}]
    assert data["candidate"]["phone_numbers"][0]["phone_number"] == "+44 20 7946 0000"
    assert (data["remote_id"], second["data"]["remote_id"]) == ("1", "2")
    assert data["id"] != second["data"]["id"]
    assert first["warnings"] and first["warnings"][0]["message"]


@pytest.mark.anyio
async def test_generated_ids_are_reproducible_from_the_seed() -> None:
    async def first_id(seed: int) -> str:
        async with running(SandboxConfig(seed=seed)) as sandbox:
            return str((await sandbox.apply("ok--job-1")).json()["data"]["id"])

    assert await first_id(1) == await first_id(1)
    assert await first_id(1) != await first_id(2)


@pytest.mark.anyio
async def test_the_path_without_v1_is_served_too(sandbox: Sandbox) -> None:
    response = await sandbox.client.post("/ats/jobs/ok--job-1/applications", json=candidate(), headers=HEADERS)

    assert response.status_code == 200


@pytest.mark.anyio
async def test_latency_delays_every_provider_answer() -> None:
    async with running(SandboxConfig(latency_ms=50)) as sandbox:
        started = time.monotonic()
        await sandbox.apply("ok--job-1", headers={})
        elapsed = time.monotonic() - started

    assert elapsed >= 0.05


@pytest.mark.anyio
async def test_one_request_beyond_kombos_thirty_in_flight_is_refused_at_once() -> None:
    """Kombo enforces its cap since 2026-03-20: the 31st action in flight for an integration gets a 429 at once."""
    async with running(SandboxConfig(latency_ms=300)) as sandbox:
        answers = await asyncio.gather(
            *(sandbox.apply(f"ok--job-{n}", email=f"ada.{n}@example.com") for n in range(CONCURRENCY_LIMIT + 1))
        )
        refused = [r for r in answers if r.status_code == 429]
        assert len(refused) == 1 and shape(refused[0]) == "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED"
        assert refused[0].headers["Concurrency-Limit"] == "30" and refused[0].headers["Concurrency-Remaining"] == "0"
        assert sum(r.status_code == 200 for r in answers) == CONCURRENCY_LIMIT
        # another integration has its own thirty
        other = {**HEADERS, "X-Integration-Id": "greenhouse:another"}
        assert (await sandbox.apply("ok--job-x", headers=other)).status_code == 200
