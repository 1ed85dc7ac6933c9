"""The vocabulary shared by every layer: providers, statuses and their groups, decisions and reasons.

Each term has exactly one definition here; other modules import it rather than spell it, so a typo is an
import error, not a rule that silently stops matching.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CANCELLABLE_STATUSES",
    "CLAIMABLE_STATUSES",
    "DEFAULT_SCOPE",
    "ENDED_STATUSES",
    "FINAL_STATUSES",
    "TOO_FAST_REASONS",
    "UNAVAILABLE_REASONS",
    "Decision",
    "Provider",
    "Reason",
    "Status",
    "values",
]


class Provider(StrEnum):
    """The provider APIs applyq can deliver to."""

    KOMBO = "kombo"
    STACKONE = "stackone"
    CELPER = "celper"


class Status(StrEnum):
    """Where a submission is in its life."""

    #: stored, waiting for its first attempt
    QUEUED = "queued"
    #: a worker holds the lease: its request is on its way, or waiting in the worker for a thread or a slot
    IN_FLIGHT = "in_flight"
    #: an attempt failed in a retryable way; ``next_attempt_at`` says when to try again
    RETRY_SCHEDULED = "retry_scheduled"
    #: the provider accepted the application
    SUCCEEDED = "succeeded"
    #: needs a human (bad input, missing permission, retries exhausted); ``applyq requeue`` resumes it
    PARKED = "parked"
    #: ended for good (already applied, job closed)
    TERMINAL = "terminal"
    #: withdrawn by an operator
    CANCELLED = "cancelled"


#: Waiting for an attempt: a worker may claim one once its ``next_attempt_at`` has come (the "due" ones).
CLAIMABLE_STATUSES = frozenset({Status.QUEUED, Status.RETRY_SCHEDULED})
#: Ended for good: nothing delivers these any more, not even an operator (what a retention purge covers).
ENDED_STATUSES = frozenset({Status.SUCCEEDED, Status.TERMINAL, Status.CANCELLED})
#: Statuses nothing automatic changes any more (an operator may still requeue a parked one); the job board
#: hears of each one through an outcome webhook.
FINAL_STATUSES = ENDED_STATUSES | {Status.PARKED}
#: What an operator may withdraw: anything not in flight and not yet ended.
CANCELLABLE_STATUSES = frozenset({Status.QUEUED, Status.RETRY_SCHEDULED, Status.PARKED})


def values(statuses: frozenset[Status]) -> tuple[str, ...]:
    """A status group as the strings stored in the database, in a stable order (for SQL ``IN``)."""
    return tuple(sorted(s.value for s in statuses))


class Decision(StrEnum):
    """What the router decided to do with one attempt's answer."""

    SUCCESS = "success"
    RETRY = "retry"
    PARK = "park"
    TERMINAL = "terminal"


class Reason(StrEnum):
    """Why a submission is where it is: stored as ``outcome_reason`` and on each attempt.

    The router's rules, the policy, traffic signals, the candidate-facing messages, admin actions and purge
    all name reasons through this enum.
    """

    # success
    CREATED = "created"
    #: "already exists" after an earlier attempt of ours had an unknown outcome: that attempt created it
    RECONCILED = "reconciled"
    # retry
    RATE_LIMITED = "rate_limited"
    CONCURRENCY_LIMITED = "concurrency_limited"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    UNREACHABLE = "unreachable"
    UNAVAILABLE = "unavailable"
    BAD_GATEWAY = "bad_gateway"
    GATEWAY_TIMEOUT = "gateway_timeout"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_TIMEOUT = "provider_timeout"
    UNREADABLE_SUCCESS = "unreadable_success"
    SETUP_SYNC_PENDING = "setup_sync_pending"
    #: the worker stopped before recording an answer and its lease expired
    WORKER_LOST = "worker_lost"
    #: a lookup after an unknown outcome found no application: the next attempt sends it
    NOT_CREATED = "not_created"
    # park
    INVALID_INPUT = "invalid_input"
    REJECTED = "rejected"
    CONFIGURATION = "configuration"
    CONFLICT = "conflict"
    STATE_CONFLICT = "state_conflict"
    PERMISSION_MISSING = "permission_missing"
    REAUTHENTICATION_REQUIRED = "reauthentication_required"
    INTEGRATION_SETUP = "integration_setup"
    INTEGRATION_INACTIVE = "integration_inactive"
    INTEGRATION_NOT_FOUND = "integration_not_found"
    NOT_FOUND = "not_found"
    REMOTE_ERROR = "remote_error"
    UNKNOWN_CODE = "unknown_code"
    RETRIES_EXHAUSTED = "retries_exhausted"
    ACCOUNT_SETTINGS = "account_settings"
    ACCOUNT_DISABLED = "account_disabled"
    INVALID_BODY = "invalid_body"
    JOB_NOT_FOUND = "job_not_found"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    # terminal
    ALREADY_APPLIED = "already_applied"
    JOB_CLOSED = "job_closed"
    NOT_SUPPORTED = "not_supported"
    #: the vendor announced that the customer's integration (Kombo) or linked account (StackOne) was deleted
    INTEGRATION_DELETED = "integration_deleted"
    # set by operators
    CANCELLED = "cancelled"
    PURGED = "purged"


#: Reasons that only say "too fast": a cooldown for the limit key, and no attempt counted against the budget.
TOO_FAST_REASONS = frozenset({Reason.RATE_LIMITED, Reason.CONCURRENCY_LIMITED})
#: Reasons that mean "down": they count towards opening the circuit breaker.
UNAVAILABLE_REASONS = frozenset(
    {Reason.UNAVAILABLE, Reason.UNREACHABLE, Reason.BAD_GATEWAY, Reason.GATEWAY_TIMEOUT, Reason.TIMEOUT}
)

#: The idempotency-key space of the CLI, the Python API, API tokens named ``default`` and every submission
#: stored before keys were scoped per API token (migration 0005).
DEFAULT_SCOPE = "default"
