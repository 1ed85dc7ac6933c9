"""Outcome webhooks on SQLite with a MockTransport receiver: recorded with the outcome, signed, retried, once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, RecordingPublisher
from tests.unit.runtime.test_pipeline import Clock, Script, add, kombo_error, make_runtime, ok
from tests.unit.runtime.test_pipeline import sessions as sessions  # the database's clock is the test's clock
from worker.admin.actions import Result, cancel
from worker.config import Settings
from worker.db.models import Submission, WebhookEvent
from worker.runtime.pipeline import process_submission
from worker.states import Status
from worker.webhooks.delivery import WebhookSender, claim_events, deliver_once, expire_stale
from worker.webhooks.events import SIGNATURE_HEADER, encode_body, event_payload, sign, verify_signature
from worker.webhooks.outcomes import BY_STATUS, FALLBACK, public_message

SECRET = "whsec-test"
Handler = Callable[[httpx.Request], httpx.Response]


class Receiver:
    """A job board's webhook endpoint: answers from a script, keeps every request."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers) or [200]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return httpx.Response(status, headers={"Retry-After": "7"} if status == 503 else None)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def events(sessions: sessionmaker[Session]) -> list[WebhookEvent]:
    with sessions() as session:
        return list(session.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.created_at)))


def finished(settings: Settings, sessions: sessionmaker[Session], clock: Clock, handler: Handler) -> str:
    """One submission taken through one attempt answered by ``handler``."""
    sid = add(sessions, RecordingPublisher(), clock, job_id=f"job-{clock.now.timestamp()}")
    process_submission(make_runtime(settings, sessions, clock, handler), sid)
    return sid


def sender(receiver: Handler, clock: Clock) -> WebhookSender:
    return WebhookSender(
        "https://jobboard.test/hooks/applyq",
        SecretStr(SECRET),
        timeout_s=5,
        transport=httpx.MockTransport(receiver),
        clock=lambda: clock.now.timestamp(),
    )


def deliver(settings: Settings, sessions: sessionmaker[Session], clock: Clock, receiver: Handler) -> int:
    return deliver_once(sessions, sender(receiver, clock), settings, clock, skip_locked=False, rand=lambda: 0.5)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


# --- the event ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "status", "code", "message"),
    [
        (ok, "succeeded", None, "Your application has been sent to the employer."),
        (lambda r: kombo_error(400, "ATS.JOB_CLOSED"), "terminal", "ATS.JOB_CLOSED", "This job is closed."),
        (
            lambda r: kombo_error(400, "ATS.APPLICATION_ALREADY_EXISTS"),
            "terminal",
            "ATS.APPLICATION_ALREADY_EXISTS",
            "You've already applied to this position.",
        ),
        (
            lambda r: kombo_error(403, "INTEGRATION.PERMISSION_MISSING"),
            "parked",
            "INTEGRATION.PERMISSION_MISSING",
            "Your application is delayed; we're looking into it.",
        ),
    ],
)
def test_a_final_outcome_records_one_event_for_the_job_board(
    settings: Settings,
    sessions: sessionmaker[Session],
    clock: Clock,
    handler: Handler,
    status: str,
    code: str | None,
    message: str,
) -> None:
    sid = finished(settings, sessions, clock, handler)
    (event,) = events(sessions)
    payload = event.payload
    assert (event.status, event.submission_id, payload["id"]) == ("pending", sid, event.id)
    assert (payload["status"], payload["code"], payload["message"]) == (status, code, message)
    assert payload["type"] == f"submission.{status}"
    assert payload["idempotency_key"] == "key-1"
    assert payload["time"] == clock.now.isoformat()
    assert "candidate" not in payload and "ada@example.com" not in json.dumps(payload)
    assert payload["message"] != "m"  # never the provider's own message


@pytest.mark.parametrize(
    "handler",
    [ok, lambda r: kombo_error(400, "ATS.JOB_CLOSED"), lambda r: kombo_error(403, "INTEGRATION.PERMISSION_MISSING")],
)
def test_the_worker_builds_the_event_the_stored_final_state_makes(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock, handler: Handler
) -> None:
    """The worker makes the event from the answer it recorded (no read back): the same as from the row."""
    sid = finished(settings, sessions, clock, handler)
    (event,) = events(sessions)
    with sessions() as session:
        row = session.get_one(Submission, sid)
        assert event.payload == event_payload(row, event.id, clock.now)


def test_a_retry_records_nothing_and_the_later_success_records_one_event(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock
) -> None:
    script = Script(lambda r: kombo_error(503, "REMOTE.SERVICE_UNAVAILABLE"), ok)
    runtime = make_runtime(settings, sessions, clock, script)
    sid = add(sessions, RecordingPublisher(), clock, metadata={"application_id": 981})
    process_submission(runtime, sid)
    assert events(sessions) == []
    clock.advance(3600)
    process_submission(runtime, sid)
    (event,) = events(sessions)
    assert (event.payload["status"], event.payload["remote_id"]) == ("succeeded", "R1")
    assert event.payload["metadata"] == {"application_id": 981}


def test_a_cancelled_submission_sends_a_signed_outcome_event_like_every_final_state(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock
) -> None:
    # Given a queued submission that the operator withdraws
    sid = add(sessions, RecordingPublisher(), clock, metadata={"application_id": 982})
    clock.advance(60)
    with sessions() as session:
        [result] = cancel(session, [sid], actor="bob", reason="candidate withdrew", now=clock.now)
    assert result.result is Result.CANCELLED
    # When the delivery thread runs, the job board hears of it, signed
    receiver = Receiver()
    assert deliver(settings, sessions, clock, receiver) == 1
    [request] = receiver.requests
    assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER], request.content, now=clock.now.timestamp())
    body = json.loads(request.content)
    assert (body["type"], body["status"], body["reason"], body["submission_id"]) == (
        "submission.cancelled", "cancelled", "cancelled", sid,
    )  # fmt: skip
    assert (body["message"], body["metadata"], body["time"]) == (
        BY_STATUS["cancelled"], {"application_id": 982}, clock.now.isoformat(),
    )  # fmt: skip
    assert b"withdrew" not in request.content  # the operator's note stays in the audit trail


# --- the signature -----------------------------------------------------------------------------------------


def test_a_signature_verifies_only_for_the_same_secret_body_and_a_recent_time() -> None:
    body = b'{"id":"e1"}'
    header = sign(SECRET, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(SECRET, header, body, now=1_700_000_100)
    assert verify_signature(SecretStr(SECRET), header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body + b" ", now=1_700_000_100)
    assert not verify_signature("other-secret", header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body, tolerance_s=300, now=1_700_000_301)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=1700000000", "t=soon,v1=abc", "t=1700000000,v1=é"])
def test_a_malformed_signature_header_is_refused(header: str | None) -> None:
    assert not verify_signature(SECRET, header, b"{}", now=1_700_000_000)


def test_any_of_several_v1_values_may_match_during_secret_rotation() -> None:
    body = b"{}"
    old = sign("old-secret", body, 1_700_000_000).split(",")[1]
    header = sign(SECRET, body, 1_700_000_000) + "," + old
    assert verify_signature("old-secret", header, body, now=1_700_000_000)
    assert verify_signature(SECRET, header, body, now=1_700_000_000)


# --- delivery ----------------------------------------------------------------------------------------------


def test_an_event_survives_a_receiver_answering_503_and_arrives_signed_once(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock
) -> None:
    finished(settings, sessions, clock, ok)
    receiver = Receiver(503, 503, 503, 200)
    for _ in range(4):
        assert deliver(settings, sessions, clock, receiver) == 1
        assert deliver(settings, sessions, clock, receiver) == 0  # not due again until its backoff has passed
        clock.advance(3600)
    assert deliver(settings, sessions, clock, receiver) == 0  # delivered: never sent again
    (event,) = events(sessions)
    assert (event.status, event.attempt_count, event.last_http_status) == ("delivered", 4, 200)
    assert len(receiver.requests) == 4
    assert {r.content for r in receiver.requests} == {encode_body(event.payload)}  # same id, same bytes
    for request in receiver.requests:
        timestamp = int(request.headers[SIGNATURE_HEADER].split(",")[0][2:])
        assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER], request.content, now=timestamp)
        assert request.headers["content-type"] == "application/json"


def test_the_receivers_retry_after_is_a_floor_for_the_next_delivery(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock
) -> None:
    finished(settings, sessions, clock, ok)
    receiver = Receiver(503, 200)
    deliver(settings, sessions, clock, receiver)
    clock.advance(6.9)
    assert deliver(settings, sessions, clock, receiver) == 0
    clock.advance(0.1)
    assert deliver(settings, sessions, clock, receiver) == 1


def test_an_unreachable_receiver_is_retried_and_the_error_kept_without_the_url(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused to https://user:pw@jobboard.test", request=request)

    finished(settings, sessions, clock, ok)
    deliver(settings, sessions, clock, refuse)
    (event,) = events(sessions)
    assert (event.status, event.last_error, event.last_http_status) == ("pending", "ConnectError", None)


def test_a_leased_event_is_not_claimed_twice_until_its_lease_expires(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock
) -> None:
    finished(settings, sessions, clock, ok)
    with sessions() as one, sessions() as two:
        first = claim_events(one, clock(), lease_s=15, limit=8, skip_locked=False)
        second = claim_events(two, clock(), lease_s=15, limit=8, skip_locked=False)
    assert (len(first), second) == (1, [])
    clock.advance(15)  # the first process died mid-delivery: another one takes the event over
    with sessions() as three:
        (again,) = claim_events(three, clock(), lease_s=15, limit=8, skip_locked=False)
    assert (again.event_id, again.attempt) == (first[0].event_id, 2)


def test_an_event_not_acknowledged_within_the_max_age_is_given_up(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    short = settings.model_copy(update={"webhook_max_age_s": 100.0})
    finished(settings, sessions, clock, ok)
    receiver = Receiver(500)
    while events(sessions)[0].status == "pending":
        deliver(short, sessions, clock, receiver)
        clock.advance(10)
    assert events(sessions)[0].status == "expired"
    assert "webhook given up" in caplog.text  # by the last try: the next one would have been too late
    sent = len(receiver.requests)
    clock.advance(3600)
    assert deliver(short, sessions, clock, receiver) == 0
    assert len(receiver.requests) == sent


def test_a_backlog_older_than_the_max_age_expires_unsent(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock
) -> None:
    finished(settings, sessions, clock, ok)
    clock.advance(settings.webhook_max_age_s + 1)
    with sessions() as session:
        expire_stale(session, clock(), settings.webhook_max_age_s)
        session.commit()
    receiver = Receiver(200)
    assert deliver(settings, sessions, clock, receiver) == 0
    assert (events(sessions)[0].status, receiver.requests) == ("expired", [])


def test_every_status_has_a_sentence_for_the_candidate() -> None:
    assert {s.value for s in Status} <= set(BY_STATUS)
    assert public_message("some_future_status", None) == FALLBACK
    assert public_message("succeeded", "already_applied") == BY_STATUS["succeeded"]  # reconciled, not refused
