"""Outcome webhooks end to end: two real workers deliver to a receiver that answers 503 three times first."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import Stack, fresh_database, kombo_submission, start_stack
from worker.db.models import WebhookEvent
from worker.webhooks.events import SIGNATURE_HEADER, verify_signature

pytestmark = pytest.mark.e2e

SECRET = "whsec-e2e-0123456789"
FAILURES = 3


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got, and what it answered."""

    answered: int
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class FlakyReceiver:
    """A job board's webhook endpoint on a real port: 503 for the first ``failures`` deliveries of each event."""

    def __init__(self, failures: int) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    event_id = json.loads(body)["id"]
                    receiver._seen[event_id] += 1
                    status = 503 if receiver._seen[event_id] <= failures else 200
                    receiver.deliveries.append(Delivery(status, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks/applyq"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def for_submission(self, submission_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.event["submission_id"] == submission_id]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def hooked(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FlakyReceiver]]:
    receiver = FlakyReceiver(FAILURES)
    tmp = tmp_path_factory.mktemp("webhooks")
    try:
        with fresh_database() as pg_url, start_stack(pg_url, redis_url, tmp, with_worker=False) as stack:
            stack.env.update(APPLYQ_WEBHOOK_URL=receiver.url, APPLYQ_WEBHOOK_SECRET=SECRET)
            stack.start_worker("webhooks-a")  # two delivery loops on one outbox
            stack.start_worker("webhooks-b")
            yield stack, receiver
    finally:
        receiver.close()


def wait_acknowledged(receiver: FlakyReceiver, ids: list[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(any(d.answered == 200 for d in receiver.for_submission(i)) for i in ids):
            return
        time.sleep(0.1)
    raise AssertionError(f"not acknowledged after {timeout_s}s: {[len(receiver.for_submission(i)) for i in ids]}")


DELAYED = "Your application is delayed; we're looking into it."
EXPECTED = {
    "ok--job": ("succeeded", None, "Your application has been sent to the employer."),
    "closed--job": ("terminal", "ATS.JOB_CLOSED", "This job is closed."),
    "applied--job": ("terminal", "ATS.APPLICATION_ALREADY_EXISTS", "You've already applied to this position."),
    "permission--job": ("parked", "INTEGRATION.PERMISSION_MISSING", DELAYED),
}


def test_outcomes_arrive_signed_survive_503s_and_are_not_duplicated(hooked: tuple[Stack, FlakyReceiver]) -> None:
    stack, receiver = hooked
    submitted = {stack.submit(kombo_submission(job, metadata={"application_id": job})): job for job in EXPECTED}
    stack.wait_final(*submitted)
    wait_acknowledged(receiver, list(submitted))
    time.sleep(2.0)  # several delivery intervals and backoff ceilings: a duplicate would show up by now

    for submission_id, job in submitted.items():
        deliveries = receiver.for_submission(submission_id)
        assert [d.answered for d in deliveries] == [503] * FAILURES + [200]
        assert len({d.body for d in deliveries}) == 1  # the same event id and bytes on every try
        for delivery in deliveries:
            assert verify_signature(SECRET, delivery.headers[SIGNATURE_HEADER], delivery.body, tolerance_s=60)
        event = deliveries[0].event
        assert (event["status"], event["code"], event["message"]) == EXPECTED[job]
        assert event["metadata"] == {"application_id": job}
    with stack.sessions() as session:
        rows = session.execute(sa.select(WebhookEvent.status, WebhookEvent.attempt_count)).all()
    assert sorted(rows) == [("delivered", FAILURES + 1)] * len(EXPECTED)
