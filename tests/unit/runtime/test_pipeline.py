"""The attempt pipeline on SQLite with a MockTransport provider: claim, call, decide, record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, RecordingPublisher, submission_dict
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory
from worker.db.models import Submission
from worker.errors import IdempotencyConflict
from worker.intake.enqueue import enqueue, validate_all
from worker.providers import build_adapters
from worker.providers.kombo_preflight import PREFLIGHT_PATH
from worker.runtime.coalesce import Coalescer
from worker.runtime.pipeline import Runtime, process_batch, process_submission, take_turn
from worker.states import Provider, Status
from worker.traffic.limiter import Gate, Wait
from worker.traffic.signals import Traffic

Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": {"id": "K1", "remote_id": "R1"}, "warnings": []})


def kombo_error(status: int, code: str | None, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {
        "status": "error",
        "error": {"code": code, "title": None, "message": "m", "log_url": "https://l/1"},
    }
    return httpx.Response(status, json=body, headers=headers)


def no_candidates(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": {"next": None, "results": []}})


def kombo_lookup_then(send: Handler, found: Handler = no_candidates) -> Handler:
    """Kombo: ``GET /ats/candidates`` answered by ``found``, everything else by ``send``."""
    return lambda request: found(request) if request.method == "GET" else send(request)


class Script:
    """Answers requests from a list, then repeats the last answer."""

    def __init__(self, *answers: Handler) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(PREFLIGHT_PATH):  # Kombo's pre-flight: nothing known, nothing counted
            return httpx.Response(200, json={"status": "success", "data": {"attachment_restrictions": None}})
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1](request)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sessions(sqlite_url: str, clock: Clock) -> Iterator[sessionmaker[Session]]:
    """Sessions whose database clock (SQLite's ``now``: leases, due times) is the test's clock."""
    engine = create_engine(sqlite_url, clock=clock)
    yield create_session_factory(engine)
    engine.dispose()


def make_runtime(settings: Settings, sessions: sessionmaker[Session], clock: Clock, handler: Handler) -> Runtime:
    adapters = build_adapters(settings, httpx.MockTransport(handler))
    return Runtime(settings, sessions, adapters, rand=lambda: 0.5)


def add(sessions: sessionmaker[Session], publisher: RecordingPublisher, clock: Clock, **kw: object) -> str:
    stored = enqueue(sessions, publisher, validate_all([submission_dict(**kw)]), clock())
    return stored[0].submission.id


def load(sessions: sessionmaker[Session], submission_id: str) -> Submission:
    with sessions() as session:
        row = session.get_one(Submission, submission_id)
        _ = row.attempts
        return row


def test_success_on_the_first_attempt(settings, sessions, publisher, clock) -> None:
    sid = add(sessions, publisher, clock)
    assert publisher.published == [sid]
    outcome = process_submission(make_runtime(settings, sessions, clock, ok), sid)
    assert outcome.as_result() == {"decision": "success", "code": None, "status": "succeeded"}
    row = load(sessions, sid)
    assert (row.status, row.remote_id, row.provider_application_id, row.attempt_count) == (
        "succeeded",
        "R1",
        "K1",
        1,
    )
    assert [a.decision for a in row.attempts] == ["success"]
    assert row.attempts[0].latency_ms is not None


def test_retry_after_is_honoured_and_the_next_attempt_succeeds(settings, sessions, publisher, clock) -> None:
    script = Script(lambda r: kombo_error(429, "PLATFORM.RATE_LIMIT_EXCEEDED", {"Retry-After": "30"}), ok)
    runtime = make_runtime(settings, sessions, clock, script)
    sid = add(sessions, publisher, clock)
    assert process_submission(runtime, sid).decision == "retry"
    row = load(sessions, sid)
    assert row.status == "retry_scheduled"
    assert row.next_attempt_at == NOW + timedelta(seconds=30)
    assert row.attempts[0].delay_s == 30.0

    clock.advance(29.9)
    assert process_submission(runtime, sid).decision == "skipped"
    assert script.calls == 1

    clock.advance(0.1)
    assert process_submission(runtime, sid).decision == "success"
    assert [a.decision for a in load(sessions, sid).attempts] == ["retry", "success"]


@pytest.mark.parametrize(
    ("status", "code", "final", "reason"),
    [
        (400, "REMOTE.INPUT_INVALID", Status.PARKED, "invalid_input"),
        (403, "INTEGRATION.PERMISSION_MISSING", Status.PARKED, "permission_missing"),
        (400, "ATS.JOB_CLOSED", Status.TERMINAL, "job_closed"),
        (400, "ATS.APPLICATION_ALREADY_EXISTS", Status.TERMINAL, "already_applied"),
        (400, "ATS.NEW_CODE_FROM_THE_FUTURE", Status.PARKED, "unknown_code"),
    ],
)
def test_final_decisions_record_code_reason_and_remediation(
    settings, sessions, publisher, clock, status, code, final, reason
) -> None:
    sid = add(sessions, publisher, clock)
    process_submission(make_runtime(settings, sessions, clock, lambda r: kombo_error(status, code)), sid)
    row = load(sessions, sid)
    assert (row.status, row.outcome_code, row.outcome_reason) == (final.value, code, reason)
    assert row.remediation
    assert row.attempts[0].log_url == "https://l/1"


def test_retries_end_parked_as_exhausted(settings, sessions, publisher, clock) -> None:
    runtime = make_runtime(settings, sessions, clock, lambda r: kombo_error(503, "REMOTE.SERVICE_UNAVAILABLE"))
    sid = add(sessions, publisher, clock)
    for _ in range(settings.max_attempts):
        process_submission(runtime, sid)
        clock.advance(3600)
    row = load(sessions, sid)
    assert (row.status, row.outcome_reason, row.attempt_count) == ("parked", "retries_exhausted", 5)
    assert row.outcome_code == "REMOTE.SERVICE_UNAVAILABLE"


def test_a_timeout_then_already_exists_is_reconciled_as_success(settings, sessions, publisher, clock) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    script = Script(timeout, lambda r: kombo_error(400, "ATS.APPLICATION_ALREADY_EXISTS"))
    runtime = make_runtime(settings, sessions, clock, script)
    sid = add(sessions, publisher, clock)
    process_submission(runtime, sid)
    clock.advance(3600)
    process_submission(runtime, sid)
    row = load(sessions, sid)
    assert (row.status, row.outcome_reason) == ("succeeded", "reconciled")
    assert [a.unknown_outcome for a in row.attempts] == [True, False]


def test_a_duplicate_message_for_a_leased_submission_sends_nothing(settings, sessions, publisher, clock) -> None:
    from worker.db.leases import claim

    script = Script(ok)
    sid = add(sessions, publisher, clock)
    with sessions() as session:
        assert claim(session, [sid], settings.lease_s)
    assert process_submission(make_runtime(settings, sessions, clock, script), sid).decision == "skipped"
    assert script.calls == 0


def test_a_batch_runs_each_due_submission_once_and_answers_in_order(settings, sessions, publisher, clock) -> None:
    script = Script(ok)
    runtime = make_runtime(settings, sessions, clock, script)
    first, second = add(sessions, publisher, clock), add(sessions, publisher, clock, idempotency_key="key-2")
    outcomes = process_batch(runtime, [first, "no-such-id", second, first, second])
    assert [o.decision for o in outcomes] == ["success", "skipped", "success", "success", "success"]
    assert script.calls == 2
    assert {load(sessions, sid).attempt_count for sid in (first, second)} == {1}


def test_two_asking_for_the_same_lease_in_one_grouped_claim_get_it_once(settings, sessions, publisher, clock) -> None:
    runtime = make_runtime(settings, sessions, clock, ok)
    sid = add(sessions, publisher, clock)
    lease, duplicate = runtime.claim_each([sid, sid])
    assert lease is not None and lease.submission_id == sid
    assert duplicate is None


def test_concurrent_duplicate_messages_send_once(settings, sessions, publisher, clock) -> None:
    script = Script(ok)
    runtime = make_runtime(settings, sessions, clock, script)
    sid = add(sessions, publisher, clock)
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: process_submission(runtime, sid).decision, range(16)))
    assert sorted(set(outcomes)) == ["skipped", "success"] and outcomes.count("success") == 1
    assert script.calls == 1


def test_an_expired_lease_is_taken_over_and_the_lost_attempt_marked(settings, sessions, publisher, clock) -> None:
    from worker.db.leases import claim

    sid = add(sessions, publisher, clock)
    with sessions() as session:
        claim(session, [sid], settings.lease_s)
    clock.advance(settings.lease_s + 1)
    runtime = make_runtime(settings, sessions, clock, kombo_lookup_then(ok))
    process_submission(runtime, sid)  # the lost attempt may have landed: look it up first
    process_submission(runtime, sid)  # Kombo showed none: send
    row = load(sessions, sid)
    assert row.status == "succeeded"
    assert [(a.kind, a.reason, a.unknown_outcome) for a in row.attempts] == [
        ("send", "worker_lost", True),
        ("lookup", "not_created", False),
        ("send", "created", False),
    ]


def test_a_final_submission_is_never_sent_again(settings, sessions, publisher, clock) -> None:
    script = Script(ok)
    runtime = make_runtime(settings, sessions, clock, script)
    sid = add(sessions, publisher, clock)
    process_submission(runtime, sid)
    clock.advance(10_000)
    assert process_submission(runtime, sid).decision == "skipped"
    assert script.calls == 1


def test_same_key_same_payload_returns_the_original(sessions, publisher, clock) -> None:
    first = add(sessions, publisher, clock)
    second = add(sessions, publisher, clock)
    assert first == second
    assert publisher.published == [first]


def test_same_key_different_payload_is_refused_and_stores_nothing(sessions, publisher, clock) -> None:
    add(sessions, publisher, clock)
    items = validate_all([submission_dict(idempotency_key="key-2"), submission_dict(job_id="other")])
    with pytest.raises(IdempotencyConflict):
        enqueue(sessions, publisher, items, clock())
    with sessions() as session:
        assert session.query(Submission).count() == 1


def test_a_failed_publish_leaves_the_submission_for_the_dispatcher(settings, sessions, publisher, clock) -> None:
    from worker.runtime.dispatcher import dispatch_once

    publisher.fail = True
    sid = add(sessions, publisher, clock)
    assert load(sessions, sid).published_at is None
    publisher.fail = False
    assert dispatch_once(sessions, publisher, settings, skip_locked=False) == 1
    assert publisher.published == [sid]
    assert dispatch_once(sessions, publisher, settings, skip_locked=False) == 0


def test_the_dispatcher_republishes_a_lost_message(settings, sessions, publisher, clock) -> None:
    from worker.runtime.dispatcher import dispatch_once

    sid = add(sessions, publisher, clock)
    assert dispatch_once(sessions, publisher, settings, skip_locked=False) == 0
    clock.advance(settings.republish_after_s + 1)
    assert dispatch_once(sessions, publisher, settings, skip_locked=False) == 1
    assert publisher.published == [sid, sid]


def candidates_with(job_id: str) -> Handler:
    """Kombo's ``GET /ats/candidates`` answering one candidate who applied to ``job_id``."""
    application = {"id": "K1", "remote_id": "R1", "job": {"id": job_id, "name": None, "remote_id": "J"}}
    candidate = {"id": "C1", "remote_id": "RC1", "applications": [application]}
    body = {"status": "success", "data": {"next": None, "results": [candidate]}}
    return lambda request: httpx.Response(200, json=body)


def test_after_a_timeout_the_next_attempt_looks_up_and_reconciles_without_sending(
    settings, sessions, publisher, clock
) -> None:
    posts: list[httpx.Request] = []

    def timeout_once(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        raise httpx.ReadTimeout("the create outlasted the client", request=request)

    runtime = make_runtime(settings, sessions, clock, kombo_lookup_then(timeout_once, candidates_with("ok--job-1")))
    sid = add(sessions, publisher, clock)
    assert process_submission(runtime, sid).code == "TRANSPORT.TIMEOUT"
    clock.advance(120)
    outcome = process_submission(runtime, sid)

    assert outcome.as_result() == {"decision": "success", "code": None, "status": "succeeded"}
    assert len(posts) == 1, "no second POST: the lookup found the application"
    row = load(sessions, sid)
    assert (row.outcome_reason, row.provider_application_id, row.remote_id) == ("reconciled", "K1", "R1")
    assert [(a.kind, a.reason) for a in row.attempts] == [("send", "timeout"), ("lookup", "reconciled")]


def test_a_failed_lookup_is_retried_as_a_lookup_never_as_a_send(settings, sessions, publisher, clock) -> None:
    posts: list[httpx.Request] = []

    def lost(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        raise httpx.RemoteProtocolError("connection closed mid-response", request=request)

    down = lambda request: httpx.Response(503, text="<html>down</html>")  # noqa: E731
    runtime = make_runtime(settings, sessions, clock, kombo_lookup_then(lost, down))
    sid = add(sessions, publisher, clock)
    for _ in range(3):
        process_submission(runtime, sid)
        clock.advance(120)
    row = load(sessions, sid)
    assert len(posts) == 1
    assert [a.kind for a in row.attempts] == ["send", "lookup", "lookup"]


class _Observing:
    """A limiter that lets every turn go and notes, at each release, whether the answer was recorded yet."""

    def __init__(self, recorded: threading.Event) -> None:
        self.recorded = recorded
        self.released_before_recording: list[bool] = []

    def gate(self, key: str, spec: object, submission_id: str, hold_key: str = "") -> Gate:
        return Gate(Wait.GO)

    def observe(self, key: str, spec: object, gate: Gate, signal: object, hints: object, hold_key: str = "") -> None:
        self.released_before_recording.append(not self.recorded.is_set())


def test_the_slot_frees_with_the_answer_and_the_batch_returns_once_it_is_recorded(
    settings, sessions, publisher, clock
) -> None:
    # Given a recording held back (a busy database) and a limiter that notes when the slot is released
    sid = add(sessions, publisher, clock)
    recorded, release = threading.Event(), threading.Event()
    runtime = make_runtime(settings, sessions, clock, Script(ok))
    limiter = _Observing(recorded)
    runtime.traffic = Traffic(limiter)  # type: ignore[arg-type]
    store = runtime.finish_all

    def slow_finish(done):  # type: ignore[no-untyped-def]
        release.wait(5)
        kept = store(done)
        recorded.set()
        return kept

    runtime.records = Coalescer(slow_finish, "record")
    # When the batch runs
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(process_batch, runtime, [sid])
        deadline = time.monotonic() + 5
        while not limiter.released_before_recording and time.monotonic() < deadline:
            time.sleep(0.01)
        # Then the provider's slot is free while the answer waits to be recorded, and the batch (whose return
        # acknowledges the message) is not over until it is
        assert limiter.released_before_recording == [True]
        assert not batch.done()
        release.set()
        assert [o.status for o in batch.result(timeout=5)] == ["succeeded"]
    assert load(sessions, sid).status == Status.SUCCEEDED.value


class _Holding:
    """A limiter that holds every turn back for ``wait_s`` (a rate slot that far off), or fails like a lost Redis."""

    def __init__(self, wait_s: float = 0.0, error: Exception | None = None) -> None:
        self.wait_s = wait_s
        self.error = error

    def gate(self, key: str, spec: object, submission_id: str, hold_key: str = "") -> Gate:
        if self.error is not None:
            raise self.error
        return Gate(Wait.RESERVED, self.wait_s)

    def observe(self, key: str, spec: object, gate: Gate, signal: object, hints: object, hold_key: str = "") -> None:
        raise AssertionError("a turn held back has no slot to give back")


def test_a_turn_held_back_gives_its_claim_back_and_no_attempt_is_counted(settings, sessions, publisher, clock) -> None:
    # Given a submission whose provider's next rate slot is 10 s away (far beyond the inline wait)
    script = Script(ok)
    runtime = make_runtime(settings, sessions, clock, script)
    runtime.traffic = Traffic(_Holding(wait_s=10.0))  # type: ignore[arg-type]
    sid = add(sessions, publisher, clock)
    # When its turn comes
    [outcome] = process_batch(runtime, [sid])
    # Then nothing was sent, and the submission is as it was, due once the wait is over (the database's clock)
    assert (outcome.decision, outcome.code) == ("deferred", "reserved")
    assert script.calls == 0
    row = load(sessions, sid)
    assert (row.status, row.attempt_count, row.attempts) == (Status.QUEUED.value, 0, [])
    assert (row.lease_token, row.lease_expires_at, row.published_at) == (None, None, None)
    assert row.next_attempt_at == clock.now + timedelta(seconds=10)


def test_a_retry_held_back_keeps_its_history_and_stays_a_retry(settings, sessions, publisher, clock) -> None:
    # Given a submission whose first attempt was answered 503 (a retry is scheduled)
    runtime = make_runtime(settings, sessions, clock, Script(lambda r: kombo_error(503, None), ok))
    sid = add(sessions, publisher, clock)
    process_submission(runtime, sid)
    clock.advance(120)
    # When the limiter holds its second attempt back
    runtime.traffic = Traffic(_Holding(wait_s=10.0))  # type: ignore[arg-type]
    assert process_submission(runtime, sid).decision == "deferred"
    # Then the first attempt stays, the held-back one is not an attempt, and the next one is the second
    row = load(sessions, sid)
    assert (row.status, row.attempt_count, len(row.attempts)) == (Status.RETRY_SCHEDULED.value, 1, 1)
    runtime.traffic = Traffic()
    clock.advance(10)
    assert process_submission(runtime, sid).status == "succeeded"
    assert [a.number for a in load(sessions, sid).attempts] == [1, 2]


def test_a_limiter_failure_gives_the_claim_back_for_the_dispatcher(settings, sessions, publisher, clock) -> None:
    # Given a limiter whose Redis is gone
    script = Script(ok)
    runtime = make_runtime(settings, sessions, clock, script)
    runtime.traffic = Traffic(_Holding(error=ConnectionError("redis is gone")))  # type: ignore[arg-type]
    sid = add(sessions, publisher, clock)
    # When the turn runs, the error reaches the task (Celery logs it)
    with pytest.raises(ConnectionError):
        process_batch(runtime, [sid])
    # Then nothing was sent, no attempt is left open, and the dispatcher publishes it again later
    row = load(sessions, sid)
    assert script.calls == 0
    assert (row.status, row.attempt_count, row.attempts, row.lease_token) == (Status.QUEUED.value, 0, [], None)
    assert row.next_attempt_at == clock.now + timedelta(seconds=settings.republish_after_s)


def test_a_claim_that_waited_long_is_renewed_before_its_call(settings, sessions, publisher, clock) -> None:
    # Given a claim older than claim_ahead_s when its thread gets to it, and a provider that notes the lease
    # as it stands when the request arrives
    leases_seen: list[datetime | None] = []

    def noting(request: httpx.Request) -> httpx.Response:
        leases_seen.append(load(sessions, sid).lease_expires_at)
        return ok(request)

    runtime = make_runtime(settings.model_copy(update={"claim_ahead_s": 1e-6}), sessions, clock, Script(noting))
    sid = add(sessions, publisher, clock)
    [lease] = runtime.claim_each([sid])
    assert lease is not None
    time.sleep(0.01)
    clock.advance(20)
    # When its turn runs
    turn = take_turn(runtime, lease, "kombo:x")
    # Then the lease was renewed from the database's time before the call: the provider's full lease is ahead
    assert leases_seen == [clock.now + timedelta(seconds=settings.lease_for(Provider.KOMBO))]
    assert turn.recorded is not None and turn.recorded.result(timeout=5) is True
    assert (turn.outcome.status, load(sessions, sid).attempt_count) == ("succeeded", 1)


def test_a_claim_taken_over_while_it_waited_sends_nothing(settings, sessions, publisher, clock) -> None:
    # Given a claim that waited so long that its lease ran out and another worker took the submission over
    script = Script(ok)
    runtime = make_runtime(settings.model_copy(update={"claim_ahead_s": 1e-6}), sessions, clock, script)
    sid = add(sessions, publisher, clock)
    [stale] = runtime.claim_each([sid])
    assert stale is not None
    time.sleep(0.01)
    clock.advance(settings.lease_s + 60)
    [other] = runtime.claim_each([sid])
    assert other is not None
    # When the stale turn runs
    turn = take_turn(runtime, stale, "kombo:x")
    # Then it sends nothing and records nothing: the submission is the other worker's
    assert (turn.outcome.decision, turn.recorded, script.calls) == ("skipped", None, 0)
    row = load(sessions, sid)
    assert (row.lease_token, row.attempt_count) == (other.lease_token, 2)
