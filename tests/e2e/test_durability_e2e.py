"""Durability: killed workers, SIGTERM, a flushed broker, a failed publish and duplicate messages.

Each test runs its own stack (fresh database, own queue, a Redis database of its own) because it kills or
stops workers and flushes Redis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.e2e.conftest import Stack, fresh_database, kombo_submission, start_stack
from worker.config import Settings
from worker.db.models import Attempt, Submission
from worker.runtime.tasks import CeleryPublisher, create_celery

pytestmark = pytest.mark.e2e

#: A Redis database these tests may flush.
FLUSHABLE_REDIS = os.environ.get("APPLYQ_TEST_FLUSHABLE_REDIS_URL", "redis://127.0.0.1:6379/12")


@pytest.fixture
def own_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with fresh_database() as pg_url, start_stack(pg_url, FLUSHABLE_REDIS, tmp_path, with_worker=False) as stack:
        yield stack


def wait_in_flight(stack: Stack, submission_id: str, timeout_s: float = 20.0) -> None:
    """Until an attempt of the submission is open (the request is at the provider)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with stack.sessions() as session:
            open_attempt = session.scalar(
                sa.select(sa.func.count()).where(Attempt.submission_id == submission_id, Attempt.decision.is_(None))
            )
        if open_attempt:
            return
        time.sleep(0.05)
    raise AssertionError("no attempt started")


def created_at_sandbox(stack: Stack) -> int:
    return int(httpx.get(f"{stack.sandbox_url}/_sandbox/stats").json()["created"])


def test_a_worker_killed_mid_attempt_loses_nothing_and_reconciles(own_stack: Stack) -> None:
    # Given a worker whose attempt created the application at the provider but never got the answer
    worker = own_stack.start_worker("doomed")
    submission_id = own_stack.submit(kombo_submission("slowcreate1--job"))
    wait_in_flight(own_stack, submission_id)
    time.sleep(0.3)
    # When it is killed and another worker takes over after the lease expires
    os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait()
    own_stack.start_worker("rescuer")
    own_stack.wait_final(submission_id, timeout_s=60)
    # Then the submission succeeded exactly once, and the history says why
    status = own_stack.status(submission_id)
    assert (status["status"], status["outcome_reason"]) == ("succeeded", "reconciled")
    lost = status["attempts"][0]
    assert (lost["reason"], lost["unknown_outcome"]) == ("worker_lost", True)
    # the rescuer looked the application up instead of sending it again
    assert [(a["kind"], a["reason"]) for a in status["attempts"][1:]] == [("lookup", "reconciled")]
    assert created_at_sandbox(own_stack) == 1


def test_sigterm_lets_the_in_flight_attempt_finish(own_stack: Stack) -> None:
    worker = own_stack.start_worker("graceful")
    submission_id = own_stack.submit(kombo_submission("hang1--job"))
    wait_in_flight(own_stack, submission_id)
    started = time.monotonic()
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.popen.wait(timeout=30) == 0
    stopped_after = time.monotonic() - started
    with own_stack.sessions() as session:
        attempt = session.scalars(sa.select(Attempt).where(Attempt.submission_id == submission_id)).one()
        status = session.get_one(Submission, submission_id).status
    # the attempt was recorded (timeout → retry), not abandoned to the lease
    assert (attempt.decision, attempt.error_code, status) == ("retry", "TRANSPORT.TIMEOUT", "retry_scheduled")
    assert stopped_after < 15
    own_stack.start_worker("next")
    own_stack.wait_final(submission_id)
    assert own_stack.status(submission_id)["status"] == "succeeded"


def test_a_flushed_broker_loses_nothing(own_stack: Stack) -> None:
    # Given thirty submissions published to Redis while no worker runs
    ids = own_stack.submit_many([kombo_submission("ok--job") for _ in range(30)])
    queue = own_stack.env["APPLYQ_QUEUE"]
    broker = redis.Redis.from_url(FLUSHABLE_REDIS)
    assert broker.llen(queue) == -(-30 // Settings().batch_size)  # one message per APPLYQ_BATCH_SIZE ids
    # When Redis loses everything
    broker.flushdb()
    # Then a worker started afterwards still delivers every one, once
    own_stack.start_worker()
    own_stack.wait_final(*ids, timeout_s=60)
    with own_stack.sessions() as session:
        statuses = session.scalars(sa.select(Submission.status).where(Submission.id.in_(ids))).all()
    assert set(statuses) == {"succeeded"}
    assert created_at_sandbox(own_stack) == 30


def test_a_publish_that_fails_after_commit_is_recovered(own_stack: Stack) -> None:
    own_stack.start_worker()
    payload = kombo_submission("ok--job")
    dead_broker = {**own_stack.env, "APPLYQ_BROKER_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "submit", "--file", "-"],
        env=dead_broker, input=json.dumps(payload), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    submission_id = json.loads(result.stdout)["id"]
    own_stack.wait_final(submission_id, timeout_s=30)
    assert own_stack.status(submission_id)["status"] == "succeeded"


def test_duplicate_messages_send_one_request(own_stack: Stack) -> None:
    own_stack.start_worker()
    payload = kombo_submission("ok--job")
    submission_id = own_stack.submit(payload)
    settings = Settings(broker_url=FLUSHABLE_REDIS, queue=own_stack.env["APPLYQ_QUEUE"])
    CeleryPublisher(create_celery(settings, FLUSHABLE_REDIS)).publish([submission_id] * 20)
    own_stack.wait_final(submission_id)
    time.sleep(1.0)  # let the duplicates drain
    assert len(own_stack.sandbox_requests(payload["job_id"])) == 1
    assert own_stack.status(submission_id)["attempt_count"] == 1


def test_health_fails_while_due_work_has_no_worker_and_recovers(own_stack: Stack) -> None:
    # Given due work and no worker or dispatcher at all
    submission_id = own_stack.submit(kombo_submission("ok--job"))
    args = ("health", "--json", "--max-idle-s", "1", "--max-dispatcher-silence-s", "10")
    sick = own_stack.cli(*args)
    assert sick.returncode == 1
    assert "dispatcher" in json.loads(sick.stdout)["problems"][0]
    # When a worker (with its dispatcher) starts, the work flows and health recovers
    own_stack.start_worker()
    own_stack.wait_final(submission_id)
    healthy = own_stack.cli(*args)
    assert healthy.returncode == 0, healthy.stdout
    assert json.loads(healthy.stdout)["ok"] is True
