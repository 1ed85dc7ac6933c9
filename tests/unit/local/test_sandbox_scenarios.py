"""The Kombo sandbox's scenarios: which job id scripts which answers, and the sequences over HTTP."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from openapi_core import OpenAPI

from tests.unit.local.kombo_sandbox import (
    EXISTS,
    HANG_S,
    HEADERS,
    NOT_JSON,
    OVERLAP_HANG_S,
    Sandbox,
    assert_matches_spec,
    running,
    shape,
)
from worker.local.sandbox import SandboxConfig
from worker.local.sandbox.scenarios import Behaviour, Outcome, Scenario, decide, parse_scenario

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
