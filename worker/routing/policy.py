"""Turn one attempt's answer into the submission's next state: a pure function of its inputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.config import Settings
from worker.providers.base import Accepted, Answer, ProviderError
from worker.routing.backoff import retry_delay
from worker.routing.router import route
from worker.routing.rules import Rule
from worker.states import Decision, Provider, Reason, Status

__all__ = ["AttemptContext", "Verdict", "decide"]


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What the policy needs to know about the submission besides the answer."""

    provider: Provider
    #: Kombo integration id / StackOne account (its prefix names the ATS, e.g. ``greenhouse:``)
    integration_id: str | None
    #: the attempt's number within the current retry window, from 1
    attempt: int
    #: when the current retry window started (creation, or the last requeue)
    window_started_at: datetime
    now: datetime
    #: an earlier attempt of ours may have reached the provider without a trustworthy answer
    had_unknown_outcome: bool
    #: uniform random number in [0, 1) for the jitter
    rand: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one attempt and the submission state that follows from it."""

    decision: Decision
    status: Status
    reason: Reason
    remediation: str = ""
    delay_s: float | None = None
    next_attempt_at: datetime | None = None
    unknown_outcome: bool = False


def decide(answer: Answer, ctx: AttemptContext, settings: Settings) -> Verdict:
    """Route the answer, apply backoff and the attempt/age limits, reconcile "already exists"."""
    if isinstance(answer, Accepted):
        return Verdict(Decision.SUCCESS, Status.SUCCEEDED, Reason.CREATED)
    rule = route(ctx.provider, answer, ctx.integration_id)
    if rule.decision is Decision.RETRY:
        return _retry(rule, answer, ctx, settings)
    if rule.decision is Decision.TERMINAL:
        if rule.reconcile and ctx.had_unknown_outcome:
            return Verdict(
                Decision.SUCCESS,
                Status.SUCCEEDED,
                Reason.RECONCILED,
                "An earlier attempt with an unknown outcome created the application.",
            )
        return Verdict(Decision.TERMINAL, Status.TERMINAL, rule.reason, rule.remediation)
    return Verdict(Decision.PARK, Status.PARKED, rule.reason, rule.remediation)


def _retry(rule: Rule, error: ProviderError, ctx: AttemptContext, settings: Settings) -> Verdict:
    if rule.long_wait:
        delay = max(settings.sync_pending_delay_s, error.retry_after_s or 0.0)
    else:
        delay = retry_delay(
            ctx.attempt,
            base_s=settings.backoff_base_s,
            max_s=settings.backoff_max_s,
            rand=ctx.rand,
            retry_after_s=error.retry_after_s,
            floor_s=rule.floor_s,
        )
    next_at = ctx.now + timedelta(seconds=delay)
    max_attempts = min(settings.max_attempts, rule.max_attempts or settings.max_attempts)
    too_old = (next_at - ctx.window_started_at).total_seconds() > settings.max_age_s
    if ctx.attempt >= max_attempts or too_old:
        return Verdict(
            Decision.PARK,
            Status.PARKED,
            Reason.RETRIES_EXHAUSTED,
            f"Gave up after {ctx.attempt} attempts ({rule.reason}). {rule.remediation or _EXHAUSTED}",
            unknown_outcome=rule.unknown_outcome,
        )
    return Verdict(
        Decision.RETRY,
        Status.RETRY_SCHEDULED,
        rule.reason,
        delay_s=delay,
        next_attempt_at=next_at,
        unknown_outcome=rule.unknown_outcome,
    )


_EXHAUSTED = "Check the provider's status and the last attempt's log_url, then: applyq requeue ID"
