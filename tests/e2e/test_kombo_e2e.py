"""One test per decision path: the CLI enqueues, a real worker delivers to the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.e2e.conftest import KOMBO_KEY, SANDBOX_RETRY_AFTER_S, Stack, fresh_database, kombo_submission, start_stack
from worker.db.models import Attempt, Submission

pytestmark = pytest.mark.e2e


def run(stack: Stack, job_id: str, **overrides: object) -> dict[str, object]:
    submission_id = stack.submit(kombo_submission(job_id, **overrides))
    stack.wait_final(submission_id)
    return stack.status(submission_id)


def decisions(status: dict[str, object]) -> list[object]:
    return [a["decision"] for a in status["attempts"]]  # type: ignore[attr-defined]


def test_success_on_the_first_attempt(stack: Stack) -> None:
    status = run(stack, "ok--job")
    assert status["status"] == "succeeded"
    assert status["remote_id"]
    assert decisions(status) == ["success"]


def test_a_burst_is_delivered_without_a_statement_lost_between_connections(stack: Stack) -> None:
    # Given a burst of submissions: every hot-path statement runs far more than psycopg's 5 times before it
    # prepares it (direct), on many server connections (behind PgBouncer in transaction mode, where applyq
    # must prepare nothing: the next transaction may get another server connection)
    ids = stack.submit_many([kombo_submission("ok--burst") for _ in range(120)])
    # When they are delivered
    stack.wait_final(*ids, timeout_s=90)
    statuses = {stack.status(i)["status"] for i in ids[:5]}
    # Then all succeeded, and no worker task failed on a statement prepared on another connection
    assert statuses == {"succeeded"}
    logs = "".join(proc.output() for proc in stack.procs)
    assert "prepared statement" not in logs
    assert "DuplicatePreparedStatement" not in logs and "InvalidSqlStatementName" not in logs


def test_rate_limited_then_succeeds_never_before_retry_after(stack: Stack) -> None:
    payload = kombo_submission("ratelimit1--job")
    submission_id = stack.submit(payload)
    stack.wait_final(submission_id)
    status = stack.status(submission_id)
    assert (status["status"], decisions(status)) == ("succeeded", ["retry", "success"])
    assert status["attempts"][0]["error_code"] == "PLATFORM.RATE_LIMIT_EXCEEDED"
    assert status["attempts"][0]["delay_s"] >= SANDBOX_RETRY_AFTER_S
    first, second = stack.sandbox_requests(payload["job_id"])
    assert second["received_at"] - first["received_at"] >= SANDBOX_RETRY_AFTER_S


@pytest.mark.parametrize("scenario", ["unavailable2", "lb503x1", "truncated1", "empty1", "nullcode1"])
def test_outages_are_retried_until_success(stack: Stack, scenario: str) -> None:
    status = run(stack, f"{scenario}--job")
    assert status["status"] == "succeeded"
    assert decisions(status)[-1] == "success"
    assert set(decisions(status)[:-1]) == {"retry"}


def test_a_hang_past_the_client_timeout_is_looked_up_then_sent_again(stack: Stack) -> None:
    status = run(stack, "hang1--job")
    kinds = [(a["kind"], a["decision"], a["reason"]) for a in status["attempts"]]
    assert (status["status"], kinds) == (
        "succeeded",
        [("send", "retry", "timeout"), ("lookup", "retry", "not_created"), ("send", "success", "created")],
    )
    first = status["attempts"][0]
    assert (first["error_code"], first["unknown_outcome"]) == ("TRANSPORT.TIMEOUT", True)


def test_a_timeout_that_landed_is_found_by_a_lookup_not_sent_again(stack: Stack) -> None:
    status = run(stack, "slowcreate1--job")
    assert (status["status"], status["outcome_reason"]) == ("succeeded", "reconciled")
    assert [(a["kind"], a["reason"]) for a in status["attempts"]] == [("send", "timeout"), ("lookup", "reconciled")]


def test_behind_an_ats_without_a_duplicate_check_a_landed_timeout_is_created_once(stack: Stack) -> None:
    # "nodupe:" integrations stand for an ATS that would accept the same application twice
    status = run(stack, "slowcreate1--job", integration_id=f"nodupe:{uuid.uuid4().hex[:8]}")
    assert (status["status"], status["outcome_reason"]) == ("succeeded", "reconciled")
    assert stack.sandbox_creations(status["job_id"]) == 1


@pytest.mark.parametrize(
    ("job", "email", "code", "reason"),
    [
        ("ok--job", "ada@invalid.example", "REMOTE.INPUT_INVALID", "invalid_input"),
        ("permission--job", None, "INTEGRATION.PERMISSION_MISSING", "permission_missing"),
        ("unknowncode--job", None, "ATS.SOMETHING_NEW", "unknown_code"),
        ("unavailable99--job", None, "REMOTE.SERVICE_UNAVAILABLE", "retries_exhausted"),
    ],
)
def test_parked_for_a_human(stack: Stack, job: str, email: str | None, code: str, reason: str) -> None:
    overrides = {}
    if email:
        overrides["candidate"] = {"first_name": "Ada", "last_name": "L", "email": email}
    status = run(stack, job, **overrides)
    assert (status["status"], status["outcome_code"], status["outcome_reason"]) == ("parked", code, reason)
    assert status["remediation"]
    assert status["attempts"][-1]["log_url"]


@pytest.mark.parametrize(
    ("job", "code"), [("closed--job", "ATS.JOB_CLOSED"), ("applied--job", "ATS.APPLICATION_ALREADY_EXISTS")]
)
def test_terminal_outcomes(stack: Stack, job: str, code: str) -> None:
    status = run(stack, job)
    assert (status["status"], status["outcome_code"], decisions(status)) == ("terminal", code, ["terminal"])


def test_invalid_input_exits_2_names_the_field_and_stores_nothing(stack: Stack) -> None:
    good = kombo_submission("ok--job")
    bad = kombo_submission("ok--job", candidate={"first_name": "A", "last_name": "B", "email": "nope"})
    result = stack.cli("submit", "--file", "-", stdin=json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    assert result.returncode == 2
    assert "line 2: candidate.email" in result.stderr
    keys = [good["idempotency_key"], bad["idempotency_key"]]
    with stack.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).where(Submission.idempotency_key.in_(keys))) == 0


def test_the_same_key_replays_and_a_different_payload_exits_3(stack: Stack) -> None:
    payload = kombo_submission("ok--job")
    first = stack.submit(payload)
    assert stack.submit(payload) == first
    changed = {**payload, "job_id": payload["job_id"] + "-other"}
    result = stack.cli("submit", "--file", "-", stdin=json.dumps(changed))
    assert result.returncode == 3
    assert "different payload" in result.stderr


def test_the_per_field_form_of_submit(stack: Stack) -> None:
    payload = kombo_submission("ok--job")
    result = stack.cli(
        "submit", "--provider", "kombo", "--job-id", payload["job_id"], "--integration-id", payload["integration_id"],
        "--idempotency-key", payload["idempotency_key"], "--candidate-json", json.dumps(payload["candidate"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert set(line) == {"id", "status", "idempotency_key"}
    stack.wait_final(line["id"])
    listed = json.loads(stack.cli("list", "--status", "succeeded", "--provider", "kombo", "--json").stdout)
    assert line["id"] in {row["id"] for row in listed}


def test_no_api_key_in_the_database_or_the_logs(stack: Stack) -> None:
    stack.wait_final(stack.submit(kombo_submission("unavailable1--job")))
    with stack.sessions() as session:
        dump = [
            str(row)
            for table in ("applyq_submission", "applyq_attempt")
            for row in session.execute(sa.text(f"SELECT * FROM {table}"))
        ]
    assert dump and not any(KOMBO_KEY in row for row in dump)
    for proc in stack.procs:
        assert KOMBO_KEY not in proc.output()


def test_the_worker_logs_one_json_line_per_state_change(stack: Stack) -> None:
    submission_id = stack.submit(kombo_submission("closed--job"))
    stack.wait_final(submission_id)
    worker_log = stack.procs[1].output()
    lines = [json.loads(x) for x in worker_log.splitlines() if submission_id in x]
    assert [(x["level"], x["code"]) for x in lines] == [("ERROR", "ATS.JOB_CLOSED")]
    assert "Ada" not in worker_log


#: A Redis of its own: a held key lives in the broker's Redis, and the session stack must not be held with it.
HELD_REDIS = os.environ.get("APPLYQ_TEST_HELD_REDIS_URL", "redis://127.0.0.1:6379/10")


@pytest.fixture
def held_stack(tmp_path: Path) -> Iterator[Stack]:
    redis.Redis.from_url(HELD_REDIS).flushdb()
    with fresh_database() as pg_url, start_stack(pg_url, HELD_REDIS, tmp_path, with_worker=False) as stack:
        stack.env["APPLYQ_HOLD_PROBE_S"] = "600"  # in this test only `applyq resume` releases the key
        stack.start_worker()
        yield stack


@pytest.mark.timeout(300)
def test_a_revoked_key_holds_its_submissions_and_resume_delivers_them_all(held_stack: Stack) -> None:
    stack = held_stack
    httpx.post(f"{stack.sandbox_url}/_sandbox/keys/kombo/revoke").raise_for_status()
    payloads = [kombo_submission("ok--job", integration_id=f"greenhouse:held-{n % 5}") for n in range(500)]
    ids = stack.submit_many(payloads)

    # every submission is looked at once and then waits for the next probe, ten minutes away
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with stack.sessions() as session:
            waiting = session.scalar(
                sa.select(sa.func.count())
                .select_from(Submission)
                .where(Submission.id.in_(ids), Submission.next_attempt_at > sa.func.now() + sa.text("interval '60 s'"))
            )
        if waiting == len(ids):
            break
        time.sleep(0.5)
    with stack.sessions() as session:
        statuses = dict(
            session.execute(
                sa.select(Submission.status, sa.func.count()).where(Submission.id.in_(ids)).group_by(Submission.status)
            ).all()
        )
        burnt = session.scalar(sa.select(sa.func.count()).select_from(Attempt).where(Attempt.submission_id.in_(ids)))
    assert waiting == len(ids) and "parked" not in statuses, statuses
    # only the calls already under way when the first refusal came back were made (one batch at most)
    assert burnt is not None and burnt <= 16, burnt
    limits = stack.cli("limits", "--json")
    assert any(row["breaker"].startswith("held") for row in json.loads(limits.stdout)), limits.stdout

    httpx.post(f"{stack.sandbox_url}/_sandbox/keys/kombo/restore").raise_for_status()
    resumed = stack.cli("resume", "--provider", "kombo", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert len(json.loads(resumed.stdout)["resumed"]) == len(ids)
    stack.wait_final(*ids, timeout_s=150)
    with stack.sessions() as session:
        final = session.scalars(sa.select(Submission.status).where(Submission.id.in_(ids))).all()
    assert set(final) == {"succeeded"}
    print(f"\nrevoked key: {burnt} attempts burnt for {len(ids)} held submissions, 0 parked")
