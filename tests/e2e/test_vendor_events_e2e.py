"""Vendor events end to end: the sandbox's integration is fixed or deleted and says so in a signed Kombo webhook;
``applyq api`` verifies it and the worker delivers what it resumed, with no operator command."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.conftest import Stack, fresh_database, kombo_submission, start_stack
from tests.e2e.test_webhooks_e2e import FlakyReceiver, wait_acknowledged
from worker.db.models import Submission, VendorEvent
from worker.local.processes import free_port, spawn, wait_http
from worker.webhooks.events import SIGNATURE_HEADER, verify_signature

pytestmark = pytest.mark.e2e

KOMBO_SECRET = "e2e-kombo-webhook-secret"
OUTCOME_SECRET = "e2e-outcome-webhook-secret"
API_TOKEN = "e2e-api-token-not-used-by-vendors"


@pytest.fixture(scope="module")
def loop(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FlakyReceiver]]:
    """Sandbox → (signed Kombo webhooks) → ``applyq api``; a worker; a job board receiving outcome webhooks."""
    receiver = FlakyReceiver(0)
    api_port = free_port()
    sandbox_args = (
        "--kombo-events-url", f"http://127.0.0.1:{api_port}/vendor-events/kombo",
        "--kombo-webhook-secret", KOMBO_SECRET,
    )  # fmt: skip
    tmp = tmp_path_factory.mktemp("vendor-events")
    try:
        with (
            fresh_database() as pg_url,
            start_stack(pg_url, redis_url, tmp, with_worker=False, sandbox_args=sandbox_args) as stack,
        ):
            stack.env.update(
                APPLYQ_WEBHOOK_URL=receiver.url,
                APPLYQ_WEBHOOK_SECRET=OUTCOME_SECRET,
                APPLYQ_KOMBO_WEBHOOK_SECRET=KOMBO_SECRET,
                APPLYQ_API_TOKENS=API_TOKEN,
            )
            stack.start_worker()
            stack.procs.append(spawn(["api", "--port", str(api_port)], stack.env, tmp / "api.log"))
            wait_http(f"http://127.0.0.1:{api_port}/openapi.json")
            yield stack, receiver
    finally:
        receiver.close()


def sandbox(stack: Stack, path: str, **params: str) -> dict[str, Any]:
    answer = httpx.post(f"{stack.sandbox_url}{path}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def rows(stack: Stack, ids: list[str]) -> list[Submission]:
    with stack.sessions() as session:
        return list(session.scalars(sa.select(Submission).where(Submission.id.in_(ids))))


def test_parked_for_a_permission_resume_and_are_delivered_when_kombo_says_active(
    loop: tuple[Stack, FlakyReceiver],
) -> None:
    stack, _ = loop
    # Given an integration that lacks the permission to create applications, and 20 applications to it
    integration = f"greenhouse:e2e-{uuid.uuid4().hex[:8]}"
    sandbox(stack, f"/_sandbox/integrations/kombo/{integration}/permission")
    ids = stack.submit_many([kombo_submission("ok--job", integration_id=integration) for _ in range(20)])
    stack.wait_final(*ids)
    assert {(r.status, r.outcome_code) for r in rows(stack, ids)} == {("parked", "INTEGRATION.PERMISSION_MISSING")}

    # When an unsigned and a tampered event arrive, they are refused and nothing changes
    for signing in ("none", "tampered"):
        refused = sandbox(stack, f"/_sandbox/events/kombo/{integration}/integration-state-changed", signing=signing)
        assert refused["status"] == 401 and refused["answer"]["status"] == 401
    assert {r.status for r in rows(stack, ids)} == {"parked"}

    # When the customer fixes it and Kombo sends integration-state-changed (ACTIVE), signed
    sent = sandbox(stack, f"/_sandbox/events/kombo/{integration}/integration-state-changed")
    assert (sent["status"], sent["answer"]["requeued"]) == (200, 20)

    # Then all 20 are delivered, once each, with no operator command, and `applyq show` names the event
    stack.wait_final(*ids)
    assert {r.status for r in rows(stack, ids)} == {"succeeded"}
    assert all(stack.sandbox_creations(r.job_id) == 1 for r in rows(stack, ids))
    shown = stack.cli("show", ids[0], "--json")
    assert shown.returncode == 0, shown.stderr
    audit = json.loads(shown.stdout)["audit"]
    event_id = sent["sent"]["id"]
    assert [(a["actor"], a["action"]) for a in audit] == [("vendor:kombo", "requeue")]
    assert event_id in audit[0]["note"]
    with stack.sessions() as session:
        stored = session.scalars(sa.select(VendorEvent).where(VendorEvent.event_id == event_id)).one()
    assert stored.integration_id == integration and stored.result == "requeued 20, made due 0, ended 0"


def test_integration_deleted_ends_queued_submissions_with_an_outcome_webhook(
    loop: tuple[Stack, FlakyReceiver],
) -> None:
    stack, receiver = loop
    # Given queued submissions (no worker is running to take them)
    stack.procs[1].stop()  # the worker (procs: the sandbox, the worker, the API)
    integration = f"greenhouse:e2e-{uuid.uuid4().hex[:8]}"
    ids = stack.submit_many([kombo_submission("ok--job", integration_id=integration) for _ in range(5)])
    assert {r.status for r in rows(stack, ids)} == {"queued"}

    # When Kombo says the integration was deleted
    sent = sandbox(stack, f"/_sandbox/events/kombo/{integration}/integration-deleted")
    assert (sent["status"], sent["answer"]["ended"]) == (200, 5)

    # Then they end terminal with the reason, nothing reaches the ATS, and the job board hears of each, signed
    assert {(r.status, r.outcome_reason) for r in rows(stack, ids)} == {("terminal", "integration_deleted")}
    stack.start_worker("after-delete")
    wait_acknowledged(receiver, ids)
    for submission_id in ids:
        delivery = next(d for d in receiver.for_submission(submission_id) if d.answered == 200)
        assert verify_signature(OUTCOME_SECRET, delivery.headers[SIGNATURE_HEADER], delivery.body)
        assert (delivery.event["status"], delivery.event["reason"]) == ("terminal", "integration_deleted")
    assert all(stack.sandbox_creations(r.job_id) == 0 for r in rows(stack, ids))
