"""The provider sandbox: scenario scripts, Kombo's wire format checked against Kombo's OpenAPI document."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData

from worker.local.sandbox import SandboxConfig, create_app
from worker.local.sandbox.scenarios import Behaviour, Outcome, Scenario, decide, parse_scenario
from worker.local.sandbox.state import MAX_LOGGED_REQUESTS, RequestRecord, SandboxState

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
REPO = Path(__file__).resolve().parents[2]

KEY = "sandbox-kombo-key"
HEADERS = {"Authorization": f"Bearer {KEY}", "X-Integration-Id": "greenhouse:HWUTwvyx2wLoSUHphiWVrp28"}
HANG_S = 0.05
#: Long enough that a second request surely finishes while the first is still stalled.
OVERLAP_HANG_S = 0.3

EXISTS = "ATS.APPLICATION_ALREADY_EXISTS"
#: Shapes of answers that are not Kombo JSON, so the spec cannot describe them.
NOT_JSON = {"html", "empty", "truncated"}


def candidate(email: str = "ada@example.com") -> dict[str, Any]:
    """A create-application body that is valid by Kombo's spec."""
    return {
        "candidate": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email_address": email,
            "phone_number": "+44 20 7946 0000",
        }
    }


class Sandbox:
    """An httpx client on a sandbox app, with Kombo shortcuts."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def apply(
        self,
        job_id: str,
        *,
        email: str = "ada@example.com",
        headers: dict[str, str] | None = None,
        body: Any = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """POST a create-application request to the Kombo endpoint."""
        url = f"/v1/ats/jobs/{job_id}/applications"
        headers = HEADERS if headers is None else headers
        if content is not None:
            return await self.client.post(url, content=content, headers=headers)
        return await self.client.post(url, json=candidate(email) if body is None else body, headers=headers)

    async def get(self, path: str, **params: str) -> Any:
        """GET a control endpoint's JSON."""
        response = await self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()


@asynccontextmanager
async def running(config: SandboxConfig) -> AsyncIterator[Sandbox]:
    """A sandbox app served in-process through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        yield Sandbox(client)


def shape(response: httpx.Response) -> str:
    """``success``, the error code (``null`` for none), or what kind of non-JSON body it is."""
    if response.headers.get("content-type", "").startswith("text/html"):
        return "html"
    if not response.content:
        return "empty"
    try:
        body = response.json()
    except json.JSONDecodeError:
        return "truncated"
    if response.status_code == 200:
        assert body["status"] == "success"
        return "success"
    assert body["status"] == "error"
    return body["error"]["code"] or "null"


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


def _null_in_nullable_enum(error: Any) -> bool:
    """The spec's nullable enums (``type: [string, null]``) forget ``null`` in ``enum``; see below."""
    types = error.schema.get("type", [])
    return error.validator == "enum" and error.instance is None and "null" in types


def assert_matches_spec(spec: OpenAPI, response: httpx.Response) -> None:
    """The response is a valid answer of ``POST /ats/jobs/{job_id}/applications``."""
    path = response.request.url.path
    request = MockRequest(
        "https://api.kombo.dev",
        "post",
        path if path.startswith("/v1/") else f"/v1{path}",
        headers=dict(response.request.headers),
        data=response.request.content,
        content_type="application/json",
    )
    mock = MockResponse(
        response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=response.headers["content-type"],
    )
    try:
        spec.validate_response(request, mock)
    except InvalidData as exc:
        errors = getattr(exc.__cause__, "schema_errors", None)
        if errors is None or not all(_null_in_nullable_enum(error) for error in errors):
            raise


# --- scenarios, pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_id", "name", "failures"),
    [
        ("ok--job-1", "ok", None),
        ("ratelimit--job-7", "ratelimit", 1),
        ("ratelimit2--job-7", "ratelimit", 2),
        ("RateLimit3--job-7", "ratelimit", 3),
        ("lb503x--job-1", "lb503x", 1),
        ("lb503x4--job-1", "lb503x", 4),
        ("remote:hang2--job-1", "hang", 2),
        ("closed--job-3", "closed", None),
        ("closed1--job-3", "closed", 1),
        ("job-3", "ok", None),
        ("ratelimit2", "ok", None),
        ("nosuchthing--job-3", "ok", None),
        ("invalid--job-3", "ok", None),
    ],
)
def test_the_job_id_prefix_names_the_scenario(job_id: str, name: str, failures: int | None) -> None:
    scenario = parse_scenario(job_id)

    assert (scenario.name, scenario.failures) == (name, failures)


def test_a_transient_scenario_misbehaves_on_its_first_attempts_only() -> None:
    scenario = parse_scenario("unavailable2--job")

    outcomes = [decide(scenario, n, already_created=False, email="a@b.example").outcome for n in (1, 2, 3)]

    assert outcomes == [Outcome.UNAVAILABLE, Outcome.UNAVAILABLE, Outcome.CREATED]


def test_a_rejected_email_wins_over_an_existing_application_which_wins_over_the_script() -> None:
    scenario = Scenario("closed", Behaviour(Outcome.JOB_CLOSED))

    def outcome(*, created: bool, email: str) -> Outcome:
        return decide(scenario, 1, already_created=created, email=email).outcome

    assert outcome(created=True, email="a@Invalid.Example") is Outcome.EMAIL_REJECTED
    assert outcome(created=True, email="a@b.example") is Outcome.ALREADY_APPLIED
    assert outcome(created=False, email="a@b.example") is Outcome.JOB_CLOSED


# --- scenario sequences over HTTP ---------------------------------------------------------------

SEQUENCES: list[tuple[str, list[tuple[int, str]]]] = [
    ("ok--job-1", [(200, "success"), (400, EXISTS)]),
    ("job-1", [(200, "success")]),
    ("mystery--job-1", [(200, "success")]),
    ("ratelimit2--job-7", [(429, "PLATFORM.RATE_LIMIT_EXCEEDED")] * 2 + [(200, "success"), (400, EXISTS)]),
    ("concurrency--job-2", [(429, "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED"), (200, "success")]),
    ("unavailable--job-3", [(503, "REMOTE.SERVICE_UNAVAILABLE"), (200, "success")]),
    ("lb503x--job-4", [(503, "html"), (200, "success")]),
    ("truncated--job-5", [(500, "truncated"), (200, "success")]),
    ("empty--job-6", [(502, "empty"), (200, "success")]),
    ("nullcode--job-8", [(503, "null"), (200, "success")]),
    ("hang--job-9", [(503, "REMOTE.SERVICE_UNAVAILABLE"), (200, "success"), (400, EXISTS)]),
    ("slowcreate--job-10", [(200, "success"), (400, EXISTS)]),
    ("timedout--job-11", [(500, "PLATFORM.TASK_TIMED_OUT"), (400, EXISTS)]),
    ("syncpending2--job-12", [(409, "INTEGRATION.SETUP_SYNC_PENDING")] * 2 + [(200, "success")]),
    ("closed--job-13", [(400, "ATS.JOB_CLOSED")] * 3),
    ("closed1--job-13", [(400, "ATS.JOB_CLOSED"), (200, "success")]),
    ("applied--job-14", [(400, EXISTS)] * 2),
    ("permission--job-15", [(403, "INTEGRATION.PERMISSION_MISSING")] * 2),
    ("reauth--job-16", [(401, "INTEGRATION.AUTHENTICATION_INVALID")] * 2),
    ("unknowncode--job-17", [(400, "ATS.SOMETHING_NEW")] * 2),
    ("badinput--job-18", [(400, "PLATFORM.INPUT_INVALID")] * 2),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("job_id", "expected"), SEQUENCES, ids=[job for job, _ in SEQUENCES])
async def test_each_scenario_answers_its_script_then_detects_the_duplicate(
    sandbox: Sandbox, kombo_spec: OpenAPI, job_id: str, expected: list[tuple[int, str]]
) -> None:
    answers = [await sandbox.apply(job_id) for _ in expected]

    assert [(r.status_code, shape(r)) for r in answers] == expected
    for response in answers:
        if shape(response) not in NOT_JSON | {"ATS.SOMETHING_NEW"}:
            assert_matches_spec(kombo_spec, response)


@pytest.mark.anyio
async def test_error_answers_carry_title_message_and_a_log_url_that_resolves(sandbox: Sandbox) -> None:
    response = await sandbox.apply("closed--job-3")

    error = response.json()["error"]
    assert error["title"] == "The requested job is closed."
    assert "job-3" in error["message"]
    log_url = httpx.URL(error["log_url"])
    assert (log_url.host, log_url.path.rsplit("/", 1)[0]) == ("sandbox.test", "/_sandbox/logs")
    record = await sandbox.get(log_url.path)
    assert (record["job_id"], record["status"]) == ("closed--job-3", 400)


@pytest.mark.anyio
async def test_a_duplicate_is_refused_with_kombos_title(sandbox: Sandbox) -> None:
    await sandbox.apply("ok--job-1")

    error = (await sandbox.apply("ok--job-1", email="ADA@example.com")).json()["error"]

    assert (error["code"], error["title"]) == (EXISTS, "The candidate has already applied to this job.")
    assert "Ada Lovelace (ADA@example.com)" in error["message"]


@pytest.mark.anyio
async def test_the_same_candidate_may_apply_to_another_job_or_integration(sandbox: Sandbox) -> None:
    await sandbox.apply("ok--job-1")

    other_job = await sandbox.apply("ok--job-2")
    other_integration = await sandbox.apply("ok--job-1", headers={**HEADERS, "X-Integration-Id": "lever:x"})

    assert (other_job.status_code, other_integration.status_code) == (200, 200)


@pytest.mark.anyio
async def test_rate_limits_send_retry_after_and_concurrency_limits_send_zero_remaining() -> None:
    async with running(SandboxConfig(retry_after_s=7)) as sandbox:
        rate_limited = await sandbox.apply("ratelimit--job-1")
        concurrency_limited = await sandbox.apply("concurrency--job-2")
        created = await sandbox.apply("ok--job-3")

    assert rate_limited.headers["retry-after"] == "7"
    assert "retry-after" not in concurrency_limited.headers
    assert concurrency_limited.headers["concurrency-limit"] == "30"
    assert concurrency_limited.headers["concurrency-remaining"] == "0"
    assert (created.headers["concurrency-limit"], created.headers["concurrency-remaining"]) == ("30", "29")


@pytest.mark.anyio
async def test_load_balancer_answers_look_like_nginx_not_kombo(sandbox: Sandbox) -> None:
    html = await sandbox.apply("lb503x--job-4")
    empty = await sandbox.apply("empty--job-6")

    assert html.headers["content-type"] == "text/html"
    assert b"503 Service Temporarily Unavailable" in html.content
    assert empty.content == b""
    assert "concurrency-limit" not in html.headers
    assert "concurrency-limit" not in empty.headers


@pytest.mark.anyio
async def test_nullcode_is_kombos_minimal_error(sandbox: Sandbox) -> None:
    error = (await sandbox.apply("nullcode--job-8")).json()["error"]

    assert error["code"] is None and error["title"] is None and error["log_url"] is None
    assert error["message"]


@pytest.mark.anyio
async def test_a_stalled_attempt_takes_hang_s(sandbox: Sandbox) -> None:
    started = time.monotonic()
    await sandbox.apply("hang--job-9")
    elapsed = time.monotonic() - started

    assert elapsed >= HANG_S


async def _while_first_stalls(sandbox: Sandbox, job_id: str) -> tuple[httpx.Response, httpx.Response]:
    """Send one request, and a second once the first has been counted (and is stalled)."""
    answers: dict[str, httpx.Response] = {}

    async def first() -> None:
        answers["first"] = await sandbox.apply(job_id)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first)
        while not await sandbox.get("/_sandbox/requests", job_id=job_id):
            await anyio.sleep(0.001)
        answers["second"] = await sandbox.apply(job_id)
        assert "first" not in answers, "the first request should still be stalled"
    return answers["first"], answers["second"]


@pytest.mark.anyio
async def test_a_retry_during_a_hang_succeeds_because_the_hang_created_nothing() -> None:
    async with running(SandboxConfig(hang_s=OVERLAP_HANG_S)) as sandbox:
        first, second = await _while_first_stalls(sandbox, "hang--job-9")
        stats = await sandbox.get("/_sandbox/stats")

    assert (first.status_code, second.status_code) == (503, 200)
    assert second.headers["concurrency-remaining"] == "28"
    assert (stats["created"], stats["duplicate_creations"]) == (1, 0)


@pytest.mark.anyio
async def test_a_retry_during_a_slow_create_finds_the_application_already_there() -> None:
    async with running(SandboxConfig(hang_s=OVERLAP_HANG_S)) as sandbox:
        first, second = await _while_first_stalls(sandbox, "slowcreate--job-10")
        stats = await sandbox.get("/_sandbox/stats")

    assert (first.status_code, shape(second)) == (200, EXISTS)
    assert (stats["created"], stats["duplicate_creations"]) == (1, 0)


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


# --- control endpoints ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_request_log_records_provider_requests_with_credentials_redacted(sandbox: Sandbox) -> None:
    await sandbox.apply("ok--job-1")
    await sandbox.apply("ok--job-1", headers={**HEADERS, "Authorization": "Bearer nope"})
    await sandbox.apply("ok--job-2")
    await sandbox.get("/_sandbox/health")

    records = await sandbox.get("/_sandbox/requests", job_id="ok--job-1")
    everything = await sandbox.get("/_sandbox/requests")

    assert len(everything) == 3
    ok, bad = records
    assert (ok["provider"], ok["method"]) == ("kombo", "POST")
    assert ok["path"] == "/v1/ats/jobs/ok--job-1/applications"
    assert ok["headers"]["authorization"] == "<redacted:ok>"
    assert bad["headers"]["authorization"] == "<redacted:bad>"
    assert ok["headers"]["x-integration-id"] == HEADERS["X-Integration-Id"]
    assert ok["body"] == candidate()
    assert (ok["status"], bad["status"]) == (200, 401)
    assert abs(ok["received_at"] - time.time()) < 60
    assert KEY not in json.dumps(everything)


def test_the_request_log_keeps_the_last_ten_thousand() -> None:
    state = SandboxState()
    for n in range(MAX_LOGGED_REQUESTS + 5):
        state.log_request(RequestRecord(str(n), "kombo", "POST", "/", f"job-{n}", {}, None))

    kept = state.requests()

    assert len(kept) == MAX_LOGGED_REQUESTS
    assert (kept[0]["log_id"], kept[-1]["log_id"]) == ("5", str(MAX_LOGGED_REQUESTS + 4))
    assert state.stats()["requests"] == MAX_LOGGED_REQUESTS + 5


@pytest.mark.anyio
async def test_stats_count_requests_creations_and_statuses(sandbox: Sandbox) -> None:
    for job_id in ("ok--job-1", "ok--job-1", "ratelimit--job-2", "ratelimit--job-2"):
        await sandbox.apply(job_id)

    stats = await sandbox.get("/_sandbox/stats")

    assert stats == {
        "requests": 4,
        "created": 2,
        "duplicate_creations": 0,
        "by_status": {"200": 2, "400": 1, "429": 1},
    }


@pytest.mark.anyio
async def test_reset_forgets_applications_scripts_and_the_log(sandbox: Sandbox) -> None:
    await sandbox.apply("ok--job-1")
    await sandbox.apply("ratelimit--job-2")

    assert (await sandbox.client.post("/_sandbox/reset")).json() == {"ok": True}

    assert await sandbox.get("/_sandbox/requests") == []
    assert (await sandbox.get("/_sandbox/stats"))["requests"] == 0
    assert (await sandbox.apply("ok--job-1")).status_code == 200
    assert (await sandbox.apply("ratelimit--job-2")).status_code == 429


@pytest.mark.anyio
async def test_health(sandbox: Sandbox) -> None:
    assert await sandbox.get("/_sandbox/health") == {"ok": True}


@pytest.mark.anyio
async def test_an_unknown_log_id_is_not_found(sandbox: Sandbox) -> None:
    response = await sandbox.client.get("/_sandbox/logs/nope")

    assert response.status_code == 404


# --- dedupe ------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("dedupe", "statuses", "created", "duplicates"),
    [(True, [500, 400, 400], 1, 0), (False, [500, 200, 200], 3, 2)],
)
async def test_without_dedupe_a_retry_after_a_timeout_creates_a_duplicate(
    dedupe: bool, statuses: list[int], created: int, duplicates: int
) -> None:
    async with running(SandboxConfig(dedupe=dedupe)) as sandbox:
        answers = [await sandbox.apply("timedout--job-11") for _ in statuses]
        stats = await sandbox.get("/_sandbox/stats")

    assert [r.status_code for r in answers] == statuses
    assert (stats["created"], stats["duplicate_creations"]) == (created, duplicates)


# --- over a real socket -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served() -> Iterator[str]:
    """``serve`` in a child process with a one-second hang; yields its base URL."""
    port = _free_port()
    code = f"from worker.local.sandbox import SandboxConfig, serve\nserve(SandboxConfig(hang_s=1.0), '127.0.0.1', {port})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base_url}/_sandbox/health").raise_for_status()
                break
            except httpx.TransportError:
                assert child.poll() is None, child.stderr.read() if child.stderr else "sandbox died"
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.05)
        yield base_url
    finally:
        child.terminate()
        child.communicate(timeout=10)


def test_serve_answers_over_a_socket_and_a_hang_outlasts_the_client_timeout(served: str) -> None:
    url = f"{served}/v1/ats/jobs/hang--job-9/applications"
    with httpx.Client(timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(url, json=candidate(), headers=HEADERS)
        retried = client.post(url, json=candidate(), headers=HEADERS)

    assert retried.status_code == 200


@pytest.mark.anyio
async def test_the_enforced_rate_limit_is_a_token_bucket_per_integration() -> None:
    async with running(SandboxConfig(rate_limit_per_s=5)) as box:
        answers = [await box.apply(f"ok--bucket-{n}", email=f"b{n}@example.com") for n in range(7)]
        assert [r.status_code for r in answers] == [200] * 5 + [429] * 2
        assert answers[-1].json()["error"]["code"] == "PLATFORM.RATE_LIMIT_EXCEEDED"
        assert answers[-1].headers["retry-after"] == "1"
        other = {**HEADERS, "X-Integration-Id": "lever:another"}
        assert (await box.apply("ok--bucket-other", headers=other)).status_code == 200
