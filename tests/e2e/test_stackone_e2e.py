"""StackOne end to end: the CLI enqueues, a real worker delivers to the sandbox's StackOne endpoint."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.e2e.conftest import SANDBOX_RETRY_AFTER_S, STACKONE_KEY, Stack, fresh_database, start_stack
from worker.db.models import Attempt, Submission

pytestmark = pytest.mark.e2e


def stackone_submission(job_id: str, account: str = "acc", **overrides: Any) -> dict[str, Any]:
    """A unique StackOne submission for the sandbox scenario in ``job_id``, on an account of its own."""
    tag = uuid.uuid4().hex[:10]
    data: dict[str, Any] = {
        "provider": "stackone",
        "integration_id": f"{account}-{tag}",
        "job_id": f"{job_id}-{tag}",
        "idempotency_key": f"e2e-so-{tag}",
        "candidate": {"first_name": "Ada", "last_name": "Lovelace", "email": f"ada.{tag}@example.com"},
    }
    data.update(overrides)
    return data


def run(stack: Stack, payload: dict[str, Any]) -> dict[str, Any]:
    submission_id = stack.submit(payload)
    stack.wait_final(submission_id)
    return stack.status(submission_id)


def decisions(status: dict[str, Any]) -> list[str]:
    return [a["decision"] for a in status["attempts"]]


def test_success_sends_basic_auth_account_user_agent_and_the_cv(stack: Stack) -> None:
    cv = {"name": "cv.pdf", "data": base64.b64encode(b"%PDF-1.4 cv").decode()}
    payload = stackone_submission(
        "ok--job", candidate={"first_name": "Ada", "last_name": "L", "email": "a@b.co", "cv": cv}
    )

    status = run(stack, payload)

    assert (status["status"], decisions(status), status["attempts"][0]["http_status"]) == (
        "succeeded",
        ["success"],
        201,
    )
    assert status["remote_id"]
    [request] = stack.sandbox_requests(payload["job_id"])
    assert request["provider"] == "stackone"
    assert request["headers"]["authorization"] == "<redacted:ok>"
    assert request["headers"]["x-account-id"] == payload["integration_id"]
    assert request["headers"]["user-agent"].startswith("applyq/")
    assert request["body"]["documents"][0]["content"] == cv["data"]


def test_rate_limited_then_succeeds_never_before_retry_after(stack: Stack) -> None:
    payload = stackone_submission("ratelimit1--job")

    status = run(stack, payload)

    assert (status["status"], decisions(status)) == ("succeeded", ["retry", "success"])
    assert (status["attempts"][0]["error_code"], status["attempts"][0]["reason"]) == ("HTTP_429", "rate_limited")
    first, second = stack.sandbox_requests(payload["job_id"])
    assert second["received_at"] - first["received_at"] >= SANDBOX_RETRY_AFTER_S


def test_the_ats_503_behind_a_bad_gateway_is_retried_until_success(stack: Stack) -> None:
    status = run(stack, stackone_submission("unavailable2--job"))

    assert (status["status"], decisions(status)) == ("succeeded", ["retry", "retry", "success"])
    assert {a["reason"] for a in status["attempts"][:2]} == {"unavailable"}


def test_a_408_after_the_write_landed_is_found_by_a_lookup_not_sent_twice(stack: Stack) -> None:
    payload = stackone_submission("timedout1--job")
    status = run(stack, payload)

    assert (status["status"], status["outcome_reason"]) == ("succeeded", "reconciled")
    assert [(a["kind"], a["error_code"]) for a in status["attempts"]] == [("send", "HTTP_408"), ("lookup", None)]
    assert status["attempts"][0]["unknown_outcome"] is True
    # StackOne has no duplicate check: one POST, one application
    assert [r["method"] for r in stack.sandbox_requests(payload["job_id"])] == ["POST"]
    assert stack.sandbox_creations(payload["job_id"]) == 1


def test_a_create_that_outlasts_the_client_timeout_is_created_exactly_once(stack: Stack) -> None:
    payload = stackone_submission("slowcreate1--job")
    status = run(stack, payload)

    assert (status["status"], status["outcome_reason"]) == ("succeeded", "reconciled")
    assert [(a["kind"], a["error_code"]) for a in status["attempts"]] == [
        ("send", "TRANSPORT.TIMEOUT"),
        ("lookup", None),
    ]
    assert stack.sandbox_creations(payload["job_id"]) == 1


def test_an_old_prefixed_account_id_is_sent_bare(stack: Stack) -> None:
    legacy = stackone_submission("ok--job", "acc")
    legacy["integration_id"] = "greenhouse:" + legacy["integration_id"]
    assert run(stack, legacy)["status"] == "succeeded"
    [request] = stack.sandbox_requests(legacy["job_id"])
    assert request["headers"]["x-account-id"] == legacy["integration_id"].removeprefix("greenhouse:")


@pytest.mark.parametrize(
    ("job", "account", "code", "reason", "says"),
    [
        ("badinput--job", "acc", "HTTP_400", "invalid_input", "provider_errors"),
        ("reauth--job", "acc", "HTTP_401", "reauthentication_required", "re-authenticate"),
        # the sandbox's account API links "acc-<ats>-…" to that ATS: Lever, Teamtailor, Greenhouse
        ("permission--job", "acc-lever", "HTTP_403", "account_settings", "Lever super admin"),
        ("unknowncode--job", "acc-teamtailor", "HTTP_501", "permission_missing", "Teamtailor"),
        # a bare id whose account API says Greenhouse gets Greenhouse's rule for a 404; others don't
        ("notfound--job", "acc-greenhouse", "HTTP_404", "reauthentication_required", "on-behalf-of"),
        ("notfound--job", "acc", "HTTP_404", "not_found", "job_id"),
    ],
)
def test_parked_for_a_human_with_what_to_do(
    stack: Stack, job: str, account: str, code: str, reason: str, says: str
) -> None:
    status = run(stack, stackone_submission(job, account))

    assert (status["status"], status["outcome_code"], status["outcome_reason"]) == ("parked", code, reason)
    assert says in status["remediation"]


def test_provider_errors_are_kept_on_the_attempt(stack: Stack) -> None:
    payload = stackone_submission("ok--job")
    payload["candidate"]["email"] = "ada@invalid.example"

    status = run(stack, payload)

    assert (status["status"], status["outcome_code"]) == ("parked", "HTTP_422")
    with stack.sessions() as session:
        details = session.scalar(sa.select(Attempt.details).where(Attempt.submission_id == status["id"]))
    assert details is not None
    [ats_error] = details["provider_errors"]
    assert ats_error["status"] == 422 and "email" in ats_error["raw"]["message"]


def test_a_409_parks_as_a_conflict_and_a_requeue_looks_it_up(stack: Stack) -> None:
    # StackOne documents 409 as "already exists" and as "conflicts with the current state": not "already applied"
    status = run(stack, stackone_submission("applied--job"))

    assert (status["status"], status["outcome_code"], status["outcome_reason"]) == ("parked", "HTTP_409", "conflict")
    assert "looks the application up" in status["remediation"]


def test_no_stackone_key_in_the_database_or_the_logs(stack: Stack) -> None:
    stack.wait_final(stack.submit(stackone_submission("reauth--job")))
    credentials = base64.b64encode(f"{STACKONE_KEY}:".encode()).decode()
    with stack.sessions() as session:
        dump = " ".join(
            str(row)
            for table in ("applyq_submission", "applyq_attempt")
            for row in session.execute(sa.text(f"SELECT * FROM {table}"))
        )
    logs = " ".join(proc.output() for proc in stack.procs)
    assert STACKONE_KEY not in dump + logs and credentials not in dump + logs


#: A Redis of its own: traffic state of the StackOne key must not be shared with the session stack.
OWN_REDIS = os.environ.get("APPLYQ_TEST_HELD_REDIS_URL", "redis://127.0.0.1:6379/10")


@pytest.fixture
def limited_stack(tmp_path: Path) -> Iterator[Stack]:
    """A sandbox enforcing 10 requests/s per StackOne API key (across accounts), and applyq told the same."""
    redis.Redis.from_url(OWN_REDIS).flushdb()
    with (
        fresh_database() as pg_url,
        start_stack(pg_url, OWN_REDIS, tmp_path, with_worker=False, sandbox_args=("--rate-limit", "10")) as stack,
    ):
        stack.env["APPLYQ_RATE_LIMITS"] = '{"stackone:*": "10/s"}'
        stack.start_worker()
        yield stack


@pytest.mark.timeout(240)
def test_three_accounts_on_one_key_share_its_rate_limit(limited_stack: Stack) -> None:
    stack = limited_stack
    payloads = [stackone_submission("ok--job", f"acc-{n % 3}") for n in range(150)]
    for payload in payloads:
        payload["integration_id"] = payload["integration_id"].rsplit("-", 1)[0]  # three accounts, not 150
    ids = stack.submit_many(payloads)
    stack.wait_final(*ids, timeout_s=120)

    stats = httpx.get(f"{stack.sandbox_url}/_sandbox/stats").json()
    too_fast = int(stats["by_status"].get("429", 0))
    with stack.sessions() as session:
        final = session.scalars(sa.select(Submission.status).where(Submission.id.in_(ids))).all()
    assert set(final) == {"succeeded"}
    assert too_fast <= 0.02 * stats["requests"], stats
    print(f"\nthree StackOne accounts on one key: {too_fast} of {stats['requests']} calls answered 429")
