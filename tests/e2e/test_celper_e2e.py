"""Celper end to end: real worker, Redis, PostgreSQL and the sandbox's Celper endpoint.

The Idempotency-Key test runs a stack of its own (own database, sandbox and queue, no shared worker) because
it kills its worker with SIGKILL in the middle of an attempt and starts another one.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import CELPER_KEY, SANDBOX_RETRY_AFTER_S, Stack, fresh_database, start_stack
from worker.db.models import Attempt, Submission

pytestmark = pytest.mark.e2e


def celper_submission(job_id: str, **overrides: Any) -> dict[str, Any]:
    """A unique Celper submission for the sandbox scenario in ``job_id``."""
    tag = uuid.uuid4().hex[:10]
    data: dict[str, Any] = {
        "provider": "celper",
        "job_id": f"{job_id}-{tag}",
        "idempotency_key": f"e2e-ce-{tag}",
        "candidate": {"first_name": "Ada", "last_name": "Lovelace", "email": f"ada.{tag}@example.com"},
    }
    data.update(overrides)
    return data


def run(stack: Stack, payload: dict[str, Any]) -> dict[str, Any]:
    submission_id = stack.submit(payload)
    stack.wait_final(submission_id, timeout_s=60)
    return stack.status(submission_id)


def decisions(status: dict[str, Any]) -> list[str]:
    return [a["decision"] for a in status["attempts"]]


def provider_key(stack: Stack, submission_id: str) -> str:
    with stack.sessions() as session:
        return session.get_one(Submission, submission_id).provider_idempotency_key


def test_success_sends_the_key_headers_and_the_flat_body(stack: Stack) -> None:
    payload = celper_submission("ok--job")

    status = run(stack, payload)

    assert (status["status"], decisions(status)) == ("succeeded", ["success"])
    assert status["remote_id"] and status["attempts"][0]["request_id"]
    [request] = stack.sandbox_requests(payload["job_id"])
    assert request["headers"]["x-api-key"] == "<redacted:ok>"
    assert request["headers"]["idempotency-key"] == provider_key(stack, status["id"])
    assert request["body"]["jobPositionId"] == payload["job_id"]


def test_rate_limited_then_succeeds_never_before_retry_after(stack: Stack) -> None:
    payload = celper_submission("ratelimit1--job")

    status = run(stack, payload)

    assert (status["status"], decisions(status)) == ("succeeded", ["retry", "success"])
    assert status["attempts"][0]["error_code"] == "RATE_LIMITED"
    first, second = stack.sandbox_requests(payload["job_id"])
    assert second["received_at"] - first["received_at"] >= SANDBOX_RETRY_AFTER_S
    assert first["headers"]["idempotency-key"] == second["headers"]["idempotency-key"]


def test_internal_errors_are_retried_then_succeed(stack: Stack) -> None:
    status = run(stack, celper_submission("unavailable2--job"))

    assert (status["status"], decisions(status)) == ("succeeded", ["retry", "retry", "success"])
    assert [a["error_code"] for a in status["attempts"][:2]] == ["INTERNAL_ERROR"] * 2


def test_internal_errors_stop_after_the_vendors_three_attempts(stack: Stack) -> None:
    status = run(stack, celper_submission("unavailable3--job"))

    assert (status["status"], status["outcome_reason"], status["attempt_count"]) == ("parked", "retries_exhausted", 3)
    assert "Celper" in status["remediation"]


def test_a_failed_answer_after_the_import_landed_is_reconciled(stack: Stack) -> None:
    status = run(stack, celper_submission("timedout1--job"))

    assert (status["status"], status["outcome_reason"]) == ("succeeded", "reconciled")
    assert status["attempts"][-1]["error_code"] == "DUPLICATE_CANDIDATE"


@pytest.mark.parametrize(
    ("job", "email", "code", "reason"),
    [
        ("unknowncode--job", None, "CANDIDATE_LOCKED", "unknown_code"),
        ("ok--job", "ada@invalid.example", "VALIDATION_ERROR", "invalid_input"),
    ],
)
def test_parked_for_a_human(stack: Stack, job: str, email: str | None, code: str, reason: str) -> None:
    payload = celper_submission(job)
    if email:
        payload["candidate"]["email"] = email

    status = run(stack, payload)

    assert (status["status"], status["outcome_code"], status["outcome_reason"]) == ("parked", code, reason)
    assert status["remediation"]
    if code == "VALIDATION_ERROR":
        with stack.sessions() as session:
            details = session.scalar(sa.select(Attempt.details).where(Attempt.submission_id == status["id"]))
        assert details == {"details": [{"field": "email", "message": f"{email} is not a deliverable address"}]}


def test_already_applied_is_terminal(stack: Stack) -> None:
    status = run(stack, celper_submission("applied--job"))

    assert (status["status"], status["outcome_code"], status["outcome_reason"]) == (
        "terminal",
        "DUPLICATE_CANDIDATE",
        "already_applied",
    )
    assert decisions(status) == ["terminal"]


def test_an_unknown_job_position_parks_for_a_fix(stack: Stack) -> None:
    # Celper: "Verify the ID and that jobPositionId is correct": fixable with requeue --set job_id=…
    status = run(stack, celper_submission("closed--job"))
    outcome = (status["status"], status["outcome_code"], status["outcome_reason"])
    assert outcome == ("parked", "NOT_FOUND", "job_not_found")


def test_a_validation_error_fixed_by_requeue_set_succeeds_on_the_first_requeue(stack: Stack) -> None:
    payload = celper_submission("ok--job")
    payload["candidate"]["email"] = "ada@invalid.example"
    status = run(stack, payload)
    assert (status["status"], status["outcome_code"]) == ("parked", "VALIDATION_ERROR")

    stack.cli("requeue", status["id"], "--set", "candidate.email=ada.fixed@example.com")
    stack.wait_final(status["id"])
    after = stack.status(status["id"])

    assert (after["status"], after["outcome_reason"]) == ("succeeded", "created")
    first, second = stack.sandbox_requests(payload["job_id"])
    assert first["headers"]["idempotency-key"] != second["headers"]["idempotency-key"]


def test_no_celper_key_in_the_database_or_the_logs(stack: Stack) -> None:
    stack.wait_final(stack.submit(celper_submission("badinput--job")), timeout_s=60)
    with stack.sessions() as session:
        dump = " ".join(
            str(row)
            for table in ("applyq_submission", "applyq_attempt")
            for row in session.execute(sa.text(f"SELECT * FROM {table}"))
        )
    assert CELPER_KEY not in dump
    assert not any(CELPER_KEY in proc.output() for proc in stack.procs)


# --- one Idempotency-Key per submission, across a worker restart --------------------------------------


@pytest.fixture
def own_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    # A database of its own too: the session stack's dispatcher would otherwise take over its submission.
    with fresh_database() as pg_url, start_stack(pg_url, redis_url, tmp_path, with_worker=False) as stack:
        # One Celper key is one traffic limit (20 / min) in Redis, shared with the session stack's Celper
        # tests: pacing would only delay this test, which is about the Idempotency-Key.
        stack.env["APPLYQ_TRAFFIC_CONTROL"] = "false"
        yield stack


def wait_for_requests(stack: Stack, job_id: str, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = stack.sandbox_requests(job_id)
        if len(seen) >= count:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} requests for {job_id} reached the sandbox")


def test_the_idempotency_key_is_the_same_on_every_attempt_even_after_a_worker_restart(own_stack: Stack) -> None:
    # Given a worker whose first attempt hangs at Celper (the sandbox stalls twice, then imports)
    worker = own_stack.start_worker("celper-doomed")
    payload = celper_submission("hang2--job")
    submission_id = own_stack.submit(payload)
    wait_for_requests(own_stack, payload["job_id"], 1)
    # When the worker is killed mid-request and a new worker process takes over
    os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait()
    own_stack.start_worker("celper-rescuer")
    own_stack.wait_final(submission_id, timeout_s=60)
    # Then every request of the submission carried the one key stored with it
    status = own_stack.status(submission_id)
    assert status["status"] == "succeeded", status
    assert [a["reason"] for a in status["attempts"]] == ["worker_lost", "timeout", "created"]
    keys = [r["headers"]["idempotency-key"] for r in own_stack.sandbox_requests(payload["job_id"])]
    assert len(keys) == 3
    assert set(keys) == {provider_key(own_stack, submission_id)}
