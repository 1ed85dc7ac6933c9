"""``policy.decide`` on its own: one row per way an answer turns into the submission's next state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest

from worker.config import Settings
from worker.providers.base import Accepted, Answer, ErrorKind, ProviderError
from worker.routing.policy import AttemptContext, decide
from worker.states import Decision, Provider, Reason, Status

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETTINGS = Settings(backoff_base_s=2.0, backoff_max_s=600.0, max_attempts=10, max_age_s=3600.0)


def kombo(code: str, retry_after_s: float | None = None) -> ProviderError:
    return ProviderError(ErrorKind.API_ERROR, code, http_status=400, code=code, retry_after_s=retry_after_s)


def ctx(attempt: int = 1, *, unknown: bool = False, age_s: float = 0.0, rand: float = 0.5) -> AttemptContext:
    return AttemptContext(
        provider=Provider.KOMBO,
        ats=None,
        attempt=attempt,
        window_started_at=NOW - timedelta(seconds=age_s),
        now=NOW,
        had_unknown_outcome=unknown,
        rand=rand,
    )


class Row(NamedTuple):
    answer: Answer
    context: AttemptContext
    decision: Decision
    status: Status
    reason: Reason
    delay_s: float | None


CASES = {
    "accepted": Row(Accepted(200, "app-1", "r-1"), ctx(), Decision.SUCCESS, Status.SUCCEEDED, Reason.CREATED, None),
    # full jitter: rand 0.5 of min(600, 2 * 2**0) = 1 s
    "rate limited, first attempt": Row(
        kombo("PLATFORM.RATE_LIMIT_EXCEEDED"), ctx(), Decision.RETRY, Status.RETRY_SCHEDULED, Reason.RATE_LIMITED, 1.0
    ),
    "Retry-After is a floor": Row(
        kombo("PLATFORM.RATE_LIMIT_EXCEEDED", retry_after_s=30),
        ctx(),
        Decision.RETRY,
        Status.RETRY_SCHEDULED,
        Reason.RATE_LIMITED,
        30.0,
    ),
    "concurrency limit waits at least its floor": Row(
        kombo("PLATFORM.CONCURRENCY_LIMIT_EXCEEDED"),
        ctx(rand=0.0),
        Decision.RETRY,
        Status.RETRY_SCHEDULED,
        Reason.CONCURRENCY_LIMITED,
        1.0,
    ),
    "setup sync pending waits the long delay": Row(
        kombo("INTEGRATION.SETUP_SYNC_PENDING"),
        ctx(),
        Decision.RETRY,
        Status.RETRY_SCHEDULED,
        Reason.SETUP_SYNC_PENDING,
        SETTINGS.sync_pending_delay_s,
    ),
    "invalid input parks": Row(
        kombo("REMOTE.INPUT_INVALID"), ctx(), Decision.PARK, Status.PARKED, Reason.INVALID_INPUT, None
    ),
    "job closed is terminal": Row(
        kombo("ATS.JOB_CLOSED"), ctx(), Decision.TERMINAL, Status.TERMINAL, Reason.JOB_CLOSED, None
    ),
    "already exists, nothing of ours in doubt": Row(
        kombo("ATS.APPLICATION_ALREADY_EXISTS"), ctx(), Decision.TERMINAL, Status.TERMINAL, Reason.ALREADY_APPLIED, None
    ),
    "already exists after an unknown outcome": Row(
        kombo("ATS.APPLICATION_ALREADY_EXISTS"),
        ctx(2, unknown=True),
        Decision.SUCCESS,
        Status.SUCCEEDED,
        Reason.RECONCILED,
        None,
    ),
    "attempts exhausted": Row(
        kombo("REMOTE.SERVICE_UNAVAILABLE"), ctx(10), Decision.PARK, Status.PARKED, Reason.RETRIES_EXHAUSTED, None
    ),
    # "too fast" costs no attempt: 1 s of full jitter at attempt 10 is 0.5 * min(600, 2 * 2**9) = 300 s
    "rate limits do not use the attempt budget": Row(
        kombo("PLATFORM.RATE_LIMIT_EXCEEDED"),
        ctx(10),
        Decision.RETRY,
        Status.RETRY_SCHEDULED,
        Reason.RATE_LIMITED,
        300.0,
    ),
    "a rule's own attempt cap": Row(
        kombo("PLATFORM.UNKNOWN_ERROR"), ctx(2), Decision.PARK, Status.PARKED, Reason.RETRIES_EXHAUSTED, None
    ),
    "retry window too old": Row(
        kombo("PLATFORM.RATE_LIMIT_EXCEEDED"),
        ctx(age_s=3599.5),
        Decision.PARK,
        Status.PARKED,
        Reason.RETRIES_EXHAUSTED,
        None,
    ),
    # a revoked key holds the whole key: no park, no attempt of the budget, one probe per APPLYQ_HOLD_PROBE_S
    "a revoked key holds, it does not park": Row(
        kombo("PLATFORM.AUTHENTICATION_INVALID"),
        ctx(10),
        Decision.RETRY,
        Status.RETRY_SCHEDULED,
        Reason.CONFIGURATION,
        SETTINGS.hold_probe_s,
    ),
    "an unknown code parks": Row(kombo("NEW.CODE"), ctx(), Decision.PARK, Status.PARKED, Reason.UNKNOWN_CODE, None),
    "a timeout retries with its outcome unknown": Row(
        ProviderError(ErrorKind.TIMEOUT, "read timed out"),
        ctx(),
        Decision.RETRY,
        Status.RETRY_SCHEDULED,
        Reason.TIMEOUT,
        1.0,
    ),
}


@pytest.mark.parametrize("row", CASES.values(), ids=CASES.keys())
def test_decide(row: Row) -> None:
    verdict = decide(row.answer, row.context, SETTINGS)
    assert (verdict.decision, verdict.status, verdict.reason, verdict.delay_s) == (
        row.decision,
        row.status,
        row.reason,
        row.delay_s,
    )
    if row.delay_s is not None:
        assert verdict.next_attempt_at == NOW + timedelta(seconds=row.delay_s)
    if row.status is Status.PARKED:
        assert verdict.remediation, "a park tells the operator what to do"


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_on_the_defaults_a_first_retry_waits_exactly_a_one_second_retry_after(rand: float) -> None:
    """Kombo's advice is a backoff from ~1 s: the first retry's full jitter then stays under a 1 s Retry-After,
    so a sporadic 429 costs the wait it asked for and no more (issue 16)."""
    verdict = decide(kombo("REMOTE.RATE_LIMIT_EXCEEDED", retry_after_s=1.0), ctx(rand=rand), Settings())
    assert verdict.delay_s == 1.0
