"""Flower as the live console: a real Flower process on the real broker, watching the real worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, kombo_submission
from worker.local.processes import free_port, spawn, wait_http

pytestmark = pytest.mark.e2e

AUTH = ("ops", f"e2e-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def flower(stack: Stack) -> Iterator[str]:
    """``applyq flower`` with basic auth, ready once it receives worker events."""
    port = free_port()
    env = {**stack.env, "APPLYQ_FLOWER_BASIC_AUTH": ":".join(AUTH)}
    proc = spawn(["flower", "--port", str(port)], env, stack.tmp / "flower.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthcheck", timeout_s=30)
        _wait_for_events(url)
        yield url
    finally:
        proc.stop()
    assert AUTH[1] not in proc.output()


def _wait_for_events(url: str, timeout_s: float = 20.0) -> None:
    """Flower sees only events sent after it subscribed: wait for a worker heartbeat."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "flower_worker_online{" in httpx.get(f"{url}/metrics", timeout=2).text:
            return
        time.sleep(0.2)
    raise AssertionError("Flower received no worker event")


def flower_tasks(url: str, submission_ids: set[str], timeout_s: float = 20.0) -> dict[str, dict[str, Any]]:
    """Flower's tasks for these submissions (found by their only argument), once all have finished."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/api/tasks", params={"taskname": "applyq.submit"}, auth=AUTH, timeout=5)
        response.raise_for_status()
        found = {sid: task for task in response.json().values() for sid in submission_ids if sid in task["args"]}
        if set(found) == submission_ids and all(t["state"] == "SUCCESS" for t in found.values()):
            return found
        time.sleep(0.3)
    raise AssertionError(f"Flower did not show every task finished: {found}")


def test_flower_shows_each_task_with_its_outcome_and_no_candidate_data(stack: Stack, flower: str) -> None:
    ok = kombo_submission("ok--job")
    bad = kombo_submission(
        "ok--job", candidate={"first_name": "Grace", "last_name": "Hopper", "email": "g@invalid.example"}
    )
    ids = {stack.submit(ok): "ok", stack.submit(bad): "bad"}
    stack.wait_final(*ids)
    tasks = flower_tasks(flower, set(ids))
    by_kind = {ids[sid]: task for sid, task in tasks.items()}
    assert by_kind["ok"]["name"] == "applyq.submit"
    assert "'decision': 'success'" in by_kind["ok"]["result"]
    assert "'decision': 'park'" in by_kind["bad"]["result"]
    assert "'code': 'REMOTE.INPUT_INVALID'" in by_kind["bad"]["result"]
    assert all(task["sent"] for task in tasks.values())  # task-sent events: seen from the moment they are queued
    dumped = json.dumps(tasks)
    for personal in ("Hopper", "g@invalid.example", "Lovelace", ok["candidate"]["email"]):
        assert personal not in dumped


def test_flower_refuses_requests_without_credentials_and_runs_read_only(flower: str) -> None:
    assert httpx.get(f"{flower}/api/tasks", timeout=5).status_code == 401
    assert httpx.get(f"{flower}/api/tasks", auth=("ops", "wrong"), timeout=5).status_code == 401
    assert httpx.get(f"{flower}/", timeout=5).status_code == 401
    revoke = httpx.post(f"{flower}/api/task/revoke/{uuid.uuid4()}", auth=AUTH, timeout=5)
    assert revoke.status_code == 403  # --read_only: the database and `applyq` are the way to act


def test_applyq_metrics_serves_outcomes_and_backlogs_from_the_database(stack: Stack) -> None:
    submission_id = stack.submit(kombo_submission("closed--job"))
    stack.wait_final(submission_id)
    port = free_port()
    proc = spawn(["metrics", "--port", str(port)], stack.env, stack.tmp / "metrics.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        proc.stop()
    assert 'applyq_attempt_outcomes_total{code="ATS.JOB_CLOSED",decision="terminal",provider="kombo"}' in text
    assert 'applyq_submissions{provider="kombo",status="terminal"}' in text
    assert "# TYPE applyq_parked_submissions gauge" in text
    assert "# TYPE applyq_limit_in_flight gauge" in text  # traffic control, from the workers' Redis
    assert "# TYPE applyq_provider_key_held gauge" in text
