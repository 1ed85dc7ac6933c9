"""Turn one attempt's answer into the submission's next state: a pure function of its inputs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from worker.config import Settings
from worker.providers.base import Accepted, Answer, ErrorKind, ProviderError
from worker.routing.backoff import retry_delay
from worker.routing.router import route
from worker.routing.rules import Rule
from worker.states import TOO_FAST_REASONS, Decision, Provider, Reason, Status

__all__ = ["AttemptContext", "Verdict", "decide", "decide_lookup"]


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What the policy needs to know about the submission besides the answer."""

    provider: Provider
    #: the ATS behind the integration or account (``Adapter.ats``), for its quirks
    ats: str | None
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


_RECONCILED = Verdict(
    Decision.SUCCESS,
    Status.SUCCEEDED,
    Reason.RECONCILED,
    "An earlier attempt with an unknown outcome created the application.",
)


def decide(answer: Answer, ctx: AttemptContext, settings: Settings) -> Verdict:
    """Route the answer, apply backoff and the attempt/age limits, reconcile "already exists"."""
    if isinstance(answer, Accepted):
        return Verdict(Decision.SUCCESS, Status.SUCCEEDED, Reason.CREATED)
    rule = route(ctx.provider, answer, ctx.ats)
    if rule.reconcile and ctx.had_unknown_outcome:
        return _RECONCILED
    if rule.decision is Decision.RETRY:
        return _retry(rule, answer, ctx, settings)
    if rule.decision is Decision.TERMINAL:
        return Verdict(Decision.TERMINAL, Status.TERMINAL, rule.reason, rule.remediation)
    return Verdict(Decision.PARK, Status.PARKED, rule.reason, rule.remediation, unknown_outcome=rule.unknown_outcome)


def decide_lookup(answer: Answer, ctx: AttemptContext, settings: Settings) -> Verdict:
    """What a lookup (after an unknown outcome) means: found is success, not found sends now, else as routed."""
    if isinstance(answer, Accepted):
        return replace(_RECONCILED, remediation="A lookup found the application an earlier attempt created.")
    if answer.kind is ErrorKind.NOT_FOUND:
        # nothing was created: the next attempt sends, at once
        return Verdict(Decision.RETRY, Status.RETRY_SCHEDULED, Reason.NOT_CREATED, delay_s=0.0, next_attempt_at=ctx.now)
    verdict = decide(answer, ctx, settings)
    # a failed read changes nothing about the earlier outcome: it is still unknown, and looked up again next time
    return replace(verdict, unknown_outcome=False)


def _retry(rule: Rule, error: ProviderError, ctx: AttemptContext, settings: Settings) -> Verdict:
    if rule.holds_key:
        # the whole key is held (traffic control stops its calls); this one waits for the next probe
        delay = max(settings.hold_probe_s, error.retry_after_s or 0.0)
    elif rule.long_wait:
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
    # "too fast" and a held key say nothing about the submission: no attempt of the budget, only time (max age)
    exhausted = ctx.attempt >= max_attempts and rule.reason not in TOO_FAST_REASONS and not rule.holds_key
    if exhausted or too_old:
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
