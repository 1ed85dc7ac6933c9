"""The sandbox's Celper endpoint: its answers match Celper's documented shapes; idempotency keys replay."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.unit.local.roundtrip import Box, Roundtrip, delivery, sandbox
from tests.unit.providers.test_celper_adapter import celper_submission
from tests.unit.routing.test_celper_routing import EXTRA_CODES, seed_codes
from worker.local.sandbox import SandboxConfig
from worker.local.sandbox.celper import CODES
from worker.providers.base import Accepted, ProviderError
from worker.routing.router import route
from worker.states import Decision, Provider

R, P, T = Decision.RETRY, Decision.PARK, Decision.TERMINAL
#: The one code the sandbox sends that Celper does not document: its ``unknowncode`` scenario.
UNDOCUMENTED = "CANDIDATE_LOCKED"

# Celper's documented envelopes (reference §A.2): flat errors, ``details`` optional, request id a UUID.
_REQUEST_ID = {"type": "string", "format": "uuid"}
ERROR_SHAPE = Draft202012Validator(
    {
        "type": "object",
        "required": ["success", "error", "message", "requestId"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "string", "pattern": "^[A-Z][A-Z_]*[A-Z]$"},
            "message": {"type": "string", "minLength": 1},
            "requestId": _REQUEST_ID,
            "details": {"type": "array", "items": {"type": "object"}},
        },
        "additionalProperties": False,
    },
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)
SUCCESS_SHAPE = Draft202012Validator(
    {
        "type": "object",
        "required": ["success", "data", "requestId"],
        "properties": {
            "success": {"const": True},
            "data": {"type": "object", "required": ["id"]},
            "requestId": _REQUEST_ID,
        },
        "additionalProperties": False,
    },
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def submission(job_id: str, email: str = "ada@example.com", **candidate: str) -> dict[str, Any]:
    return celper_submission(
        job_id=job_id, candidate={"first_name": "Ada", "last_name": "Lovelace", "email": email, **candidate}
    )


def assert_documented(response: httpx.Response, *, replay: bool = False) -> None:
    """Celper's envelope for the status, its standard headers, Retry-After only on 429."""
    body = response.json()
    if response.status_code < 300:
        SUCCESS_SHAPE.validate(body)
    else:
        ERROR_SHAPE.validate(body)
        documented = {**seed_codes(), **EXTRA_CODES}
        assert body["error"] == UNDOCUMENTED or documented[body["error"]] == response.status_code
    headers = response.headers
    assert headers["x-api-version"] == "v1"
    assert replay or headers["x-request-id"] == body["requestId"]
    limit, remaining, reset = (int(headers[f"x-ratelimit-{n}"]) for n in ("limit", "remaining", "reset"))
    assert 0 <= remaining <= limit == SandboxConfig.celper_rate_limit
    assert time.time() - 1 <= reset <= time.time() + 62, "Reset is a Unix time, not a delta"
    assert ("retry-after" in headers) == (response.status_code == 429)


#: (job id, email, expected (status, code) of successive attempts with one idempotency key)
SEQUENCES: list[tuple[str, str, list[tuple[int, str]]]] = [
    ("ok--j", "ada@example.com", [(201, "created"), (201, "created")]),
    ("ratelimit--j", "ada@example.com", [(429, "RATE_LIMITED"), (201, "created")]),
    ("concurrency--j", "ada@example.com", [(429, "RATE_LIMITED"), (201, "created")]),
    ("unavailable2--j", "ada@example.com", [(500, "INTERNAL_ERROR")] * 2 + [(201, "created")]),
    ("nullcode--j", "ada@example.com", [(500, "INTERNAL_ERROR"), (201, "created")]),
    ("syncpending--j", "ada@example.com", [(500, "INTERNAL_ERROR"), (201, "created")]),
    ("hang--j", "ada@example.com", [(500, "INTERNAL_ERROR"), (201, "created")]),
    ("slowcreate--j", "ada@example.com", [(201, "created"), (201, "created")]),
    ("timedout--j", "ada@example.com", [(500, "INTERNAL_ERROR"), (409, "DUPLICATE_CANDIDATE")]),
    ("closed--j", "ada@example.com", [(404, "NOT_FOUND")] * 2),
    ("applied--j", "ada@example.com", [(409, "DUPLICATE_CANDIDATE")] * 2),
    ("permission--j", "ada@example.com", [(403, "SCOPE_INSUFFICIENT")]),
    ("reauth--j", "ada@example.com", [(403, "FORBIDDEN")]),
    ("unknowncode--j", "ada@example.com", [(409, UNDOCUMENTED)]),
    ("badinput--j", "ada@example.com", [(400, "VALIDATION_ERROR")]),
    ("ok--j", "ada@invalid.example", [(400, "VALIDATION_ERROR")] * 2),
]


def _shape(trip: Roundtrip) -> tuple[int, str]:
    answer = trip.answer
    return trip.response.status_code, "created" if isinstance(answer, Accepted) else str(answer.label)


@pytest.mark.anyio
@pytest.mark.parametrize(("job_id", "email", "expected"), SEQUENCES, ids=[f"{j}:{e}" for j, e, _ in SEQUENCES])
async def test_every_answer_has_celpers_documented_shape(
    job_id: str, email: str, expected: list[tuple[int, str]]
) -> None:
    async with sandbox() as box:
        trips = [await box.send(box.celper, delivery(submission(job_id, email))) for _ in expected]

    assert [_shape(trip) for trip in trips] == expected
    replays = 0
    for trip in trips:
        replays += trip.response.status_code == 201
        assert_documented(trip.response, replay=replays > 1)


def test_every_code_the_sandbox_sends_is_documented_but_the_deliberate_unknown_one() -> None:
    assert sorted(CODES - set(seed_codes()) - set(EXTRA_CODES)) == [UNDOCUMENTED]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("job_id", "decision", "reason"),
    [
        ("closed--j", P, "job_not_found"),
        ("applied--j", T, "already_applied"),
        ("permission--j", R, "configuration"),  # holds the key
        ("reauth--j", R, "configuration"),  # holds the key
        ("unknowncode--j", P, "unknown_code"),
        ("badinput--j", P, "invalid_input"),
        ("ratelimit--j", R, "rate_limited"),
        ("unavailable--j", R, "provider_error"),
    ],
)
async def test_sandbox_answers_route_as_celpers_would(job_id: str, decision: Decision, reason: str) -> None:
    async with sandbox() as box:
        answer = (await box.send(box.celper, delivery(submission(job_id)))).answer

    assert isinstance(answer, ProviderError)
    rule = route(Provider.CELPER, answer)
    assert (rule.decision, rule.reason) == (decision, reason)


# --- Idempotency-Key --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_same_key_and_body_replays_the_original_answer_without_a_second_import() -> None:
    async with sandbox() as box:
        first = await box.send(box.celper, delivery(submission("ok--j"), key="k-1"))
        again = await box.send(box.celper, delivery(submission("ok--j"), key="k-1"))
        other_key = await box.send(box.celper, delivery(submission("ok--j"), key="k-2"))
        stats = await box.get("/_sandbox/stats")

    assert (first.response.status_code, first.response.content) == (again.response.status_code, again.response.content)
    assert _shape(other_key) == (409, "DUPLICATE_CANDIDATE")
    assert (stats["created"], stats["duplicate_creations"]) == (1, 0)


@pytest.mark.anyio
async def test_the_same_key_with_another_body_is_an_idempotency_conflict() -> None:
    async with sandbox() as box:
        await box.send(box.celper, delivery(submission("ok--j"), key="k-1"))
        changed = await box.send(box.celper, delivery(submission("ok--j", phone="+370 600 00000"), key="k-1"))

    assert _shape(changed) == (409, "IDEMPOTENCY_CONFLICT")
    assert_documented(changed.response)


@pytest.mark.anyio
async def test_a_failed_answer_is_not_kept_so_the_retry_runs_again() -> None:
    async with sandbox() as box:
        trips = [await box.send(box.celper, delivery(submission("ratelimit--j"), key="k-1")) for _ in range(2)]

    assert [_shape(t) for t in trips] == [(429, "RATE_LIMITED"), (201, "created")]


async def _during_stall(box: Box, data: dict[str, Any]) -> tuple[Roundtrip, Roundtrip]:
    """Send once, and again with the same key while the first answer is still stalled."""
    trips: dict[str, Roundtrip] = {}

    async def first() -> None:
        trips["first"] = await box.send(box.celper, delivery(data))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first)
        while not await box.get("/_sandbox/requests", job_id=data["job_id"]):
            await anyio.sleep(0.001)
        await anyio.sleep(0.05)
        trips["second"] = await box.send(box.celper, delivery(data))
        assert "first" not in trips, "the first answer should still be stalled"
    return trips["first"], trips["second"]


@pytest.mark.anyio
async def test_a_retry_while_a_slow_import_stalls_gets_its_answer_replayed() -> None:
    async with sandbox(SandboxConfig(hang_s=0.4)) as box:
        first, second = await _during_stall(box, submission("slowcreate--j"))
        stats = await box.get("/_sandbox/stats")

    assert (_shape(first), _shape(second)) == ((201, "created"), (201, "created"))
    assert first.response.content == second.response.content
    assert (stats["created"], stats["duplicate_creations"]) == (1, 0)


# --- what Celper refuses before anything runs ---------------------------------------------------------


async def _post(box: Box, body: Any = None, content: bytes | None = None, **headers: str) -> httpx.Response:
    request = box.celper.build_request(delivery(submission("ratelimit--j")))
    sent = {k: v for k, v in request.headers.items() if k != "content-length"}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    if content is not None:
        return await box.client.post("/v1/candidates", content=content, headers=sent)
    return await box.client.post("/v1/candidates", json=body, headers=sent)


@pytest.mark.anyio
async def test_a_wrong_key_is_unauthorized_and_does_not_count_as_an_attempt() -> None:
    async with sandbox() as box:
        refused = await _post(
            box, json.loads(box.celper.build_request(delivery(submission("ratelimit--j"))).content), x_api_key="celp_0"
        )
        scripted = await box.send(box.celper, delivery(submission("ratelimit--j")))
        [record, _] = await box.get("/_sandbox/requests", job_id="ratelimit--j")

    assert (refused.status_code, refused.json()["error"]) == (401, "UNAUTHORIZED")
    assert_documented(refused)
    assert scripted.response.status_code == 429
    assert record["headers"]["x-api-key"] == "<redacted:bad>"


@pytest.mark.anyio
async def test_a_body_that_is_not_json_is_invalid_body() -> None:
    async with sandbox() as box:
        response = await _post(box, content=b"firstName=Ada")

    assert (response.status_code, response.json()["error"]) == (400, "INVALID_BODY")
    assert_documented(response)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "headers", "fields"),
    [
        ({"firstName": "Ada"}, {}, ["jobPositionId", "email"]),
        ({"jobPositionId": "j", "email": "a@b.co", "first_name": "Ada"}, {}, ["first_name"]),
        ({"jobPositionId": "j", "email": "a@b.co", "firstName": "A" * 101}, {}, ["firstName"]),
        ({"jobPositionId": "j", "email": "a@b.co", "skipAnalysis": "yes"}, {}, ["skipAnalysis"]),
        ({"jobPositionId": "j", "email": "nobody"}, {}, ["email"]),
        ({"jobPositionId": "j", "email": "a@b.co"}, {"idempotency_key": "k" * 256}, ["Idempotency-Key"]),
        (["a list"], {}, ["body"]),
    ],
)
async def test_invalid_parameters_are_a_validation_error_naming_each_field(
    body: Any, headers: dict[str, str], fields: list[str]
) -> None:
    async with sandbox() as box:
        response = await _post(box, body, **headers)

    assert (response.status_code, response.json()["error"]) == (400, "VALIDATION_ERROR")
    assert [d["field"] for d in response.json()["details"]] == fields
    assert_documented(response)


@pytest.mark.anyio
async def test_the_log_shows_the_idempotency_key_and_hides_the_api_key() -> None:
    async with sandbox() as box:
        await box.send(box.celper, delivery(submission("ok--j"), key="applyq-abc"))
        [record] = await box.get("/_sandbox/requests", job_id="ok--j")

    assert (record["provider"], record["path"], record["status"]) == ("celper", "/v1/candidates", 201)
    assert record["headers"]["idempotency-key"] == "applyq-abc"
    assert record["headers"]["x-api-key"] == "<redacted:ok>"
    assert SandboxConfig.celper_api_key not in json.dumps(record)


@pytest.mark.anyio
async def test_the_remaining_budget_counts_down_within_the_window_and_is_not_enforced() -> None:
    async with sandbox(SandboxConfig(celper_rate_limit=2)) as box:
        trips = [await box.send(box.celper, delivery(submission(f"ok--{n}"), key=f"k-{n}")) for n in range(3)]

    assert [int(t.response.headers["x-ratelimit-remaining"]) for t in trips] == [1, 0, 0]
    assert {t.response.headers["x-ratelimit-limit"] for t in trips} == {"2"}
    assert {t.response.status_code for t in trips} == {201}
