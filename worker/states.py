"""The vocabulary shared by every layer: submission statuses and routing decisions."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ACTIVE_STATUSES", "FINAL_STATUSES", "Decision", "Provider", "Status"]


class Provider(StrEnum):
    """The provider APIs applyq can deliver to."""

    KOMBO = "kombo"
    STACKONE = "stackone"
    CELPER = "celper"


class Status(StrEnum):
    """Where a submission is in its life."""

    #: stored, waiting for its first attempt
    QUEUED = "queued"
    #: a worker holds the lease and is talking to the provider
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


#: Statuses a worker may still act on.
ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.IN_FLIGHT, Status.RETRY_SCHEDULED})
#: Statuses nothing automatic changes any more.
FINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.TERMINAL, Status.CANCELLED, Status.PARKED})


class Decision(StrEnum):
    """What the router decided to do with one attempt's answer."""

    SUCCESS = "success"
    RETRY = "retry"
    PARK = "park"
    TERMINAL = "terminal"
