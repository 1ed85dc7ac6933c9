"""The sandbox's StackOne endpoint against the real adapter and router: scenario → answer → decision."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.unit.local.roundtrip import delivery, sandbox
from tests.unit.providers.test_stackone_adapter import stackone_submission
from worker.local.sandbox import SandboxConfig
from worker.providers.base import Accepted, ProviderError, ats_name
from worker.routing.router import route
from worker.states import Decision, Provider

R, P, T = Decision.RETRY, Decision.PARK, Decision.TERMINAL


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def submission(job_id: str, account: str = "acc-1", email: str = "ada@example.com") -> dict[str, Any]:
    candidate = {"first_name": "Ada", "last_name": "Lovelace", "email": email}
    return stackone_submission(job_id=job_id, integration_id=account, candidate=candidate)


#: (job id, account, decisions of successive attempts at the same application)
SEQUENCES: list[tuple[str, str, list[tuple[Decision | None, str]]]] = [
    ("ok--j", "acc-1", [(None, "created"), (None, "created")]),  # no duplicate check: a second candidate
    ("ratelimit--j", "acc-1", [(R, "rate_limited"), (None, "created")]),
    ("concurrency--j", "acc-1", [(R, "rate_limited"), (None, "created")]),
    ("unavailable--j", "acc-1", [(R, "unavailable"), (None, "created")]),
    ("nullcode--j", "acc-1", [(R, "bad_gateway"), (None, "created")]),
    ("lb503x--j", "acc-1", [(R, "unavailable"), (None, "created")]),
    ("truncated--j", "acc-1", [(R, "provider_error"), (None, "created")]),
    ("empty--j", "acc-1", [(R, "bad_gateway"), (None, "created")]),
    ("timedout--j", "acc-1", [(R, "timeout"), (None, "created")]),
    ("closed--j", "acc-1", [(P, "invalid_input")]),
    ("badinput--j", "acc-1", [(P, "invalid_input")]),
    ("permission--j", "acc-1", [(P, "reauthentication_required")]),
    ("permission--j", "lever:acc-1", [(P, "account_settings")]),
    ("reauth--j", "acc-1", [(P, "reauthentication_required")]),
    ("unknowncode--j", "acc-1", [(T, "not_supported")]),
    ("unknowncode--j", "teamtailor:acc-1", [(P, "permission_missing")]),
    ("applied--j", "acc-1", [(P, "conflict"), (P, "conflict")]),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("job_id", "account", "expected"), SEQUENCES, ids=[f"{j}@{a}" for j, a, _ in SEQUENCES])
async def test_each_scenario_is_answered_and_routed_as_stackone_would_be(
    job_id: str, account: str, expected: list[tuple[Decision | None, str]]
) -> None:
    async with sandbox() as box:
        answers = [(await box.send(box.stackone, delivery(submission(job_id, account)))).answer for _ in expected]

    seen = []
    for answer in answers:
        if isinstance(answer, Accepted):
            seen.append((None, "created"))
        else:
            rule = route(Provider.STACKONE, answer, ats_name(account))
            seen.append((rule.decision, rule.reason))
    assert seen == expected


@pytest.mark.anyio
async def test_an_invalid_example_email_is_a_422_with_the_ats_answer_in_provider_errors() -> None:
    async with sandbox() as box:
        trip = await box.send(box.stackone, delivery(submission("ok--j", email="ada@invalid.example")))

    answer = trip.answer
    assert isinstance(answer, ProviderError)
    assert (answer.http_status, answer.title) == (422, "ValidationError")
    assert answer.details is not None
    [ats_error] = answer.details["provider_errors"]
    assert ats_error["status"] == 422 and "email" in ats_error["raw"]["message"]


@pytest.mark.anyio
async def test_408_and_429_carry_retry_after() -> None:
    async with sandbox(SandboxConfig(retry_after_s=7)) as box:
        for job_id in ("timedout--j", "ratelimit--j"):
            answer = (await box.send(box.stackone, delivery(submission(job_id)))).answer
            assert isinstance(answer, ProviderError) and answer.retry_after_s == 7.0


@pytest.mark.anyio
async def test_success_returns_stackone_and_ats_ids() -> None:
    async with sandbox() as box:
        first = (await box.send(box.stackone, delivery(submission("ok--a")))).answer
        second = (await box.send(box.stackone, delivery(submission("ok--b")))).answer

    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    assert (first.http_status, first.remote_id, second.remote_id) == (201, "1", "2")
    assert first.application_id and first.application_id != second.application_id


@pytest.mark.anyio
async def test_the_request_log_names_the_job_from_the_body_and_hides_the_credentials() -> None:
    async with sandbox() as box:
        trip = await box.send(box.stackone, delivery(submission("ok--j")))
        [record] = await box.get("/_sandbox/requests", job_id="ok--j")

    assert (record["provider"], record["path"], record["status"]) == ("stackone", "/unified/ats/applications", 201)
    assert record["headers"]["authorization"] == "<redacted:ok>"
    assert record["headers"]["x-account-id"] == "acc-1"
    assert record["body"] == json.loads(trip.request.content)
    assert SandboxConfig.stackone_api_key not in json.dumps(record)


@pytest.mark.anyio
async def test_a_refused_request_does_not_count_as_an_attempt() -> None:
    async with sandbox() as box:
        request = box.stackone.build_request(delivery(submission("ratelimit--j")))
        del request.headers["user-agent"]
        refused = await box.client.send(request)
        scripted = await box.send(box.stackone, delivery(submission("ratelimit--j")))

    assert (refused.status_code, scripted.response.status_code) == (403, 429)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "JSON object"),
        ({"candidate": {"first_name": "A", "last_name": "B", "email": "a@b.co"}}, '"job_id" is required'),
        ({"job_id": "j", "candidate_id": "c1", "candidate": {}}, "not both"),
        ({"job_id": "j"}, '"candidate" is required'),
        ({"job_id": "j", "candidate": {"first_name": "A", "email": "a@b.co"}}, '"candidate.last_name"'),
        ({"job_id": "j", "candidate": {"first_name": "A", "last_name": "B", "email": "ab"}}, "email"),
        (
            {"job_id": "j", "candidate": {"first_name": "A", "last_name": "B", "email": "a@b.co"}, "documents": [{}]},
            '"documents[0]"',
        ),
        (
            {
                "job_id": "j",
                "candidate": {"first_name": "A", "last_name": "B", "email": "a@b.co"},
                "documents": [{"name": "cv.pdf", "content": "not base64!"}],
            },
            "not base64",
        ),
    ],
)
async def test_a_body_that_cannot_be_an_application_is_refused_400(body: Any, problem: str) -> None:
    async with sandbox() as box:
        request = box.stackone.build_request(delivery(submission("ok--j")))
        headers = {k: v for k, v in request.headers.items() if k != "content-length"}
        response = await box.client.send(httpx.Request("POST", request.url, headers=headers, json=body))

    assert response.status_code == 400
    assert problem in response.json()["message"]
    assert response.json()["errorCode"] == "ValidationError"
