"""What the job board may tell the candidate about a submission: one sentence per status or reason.

These texts go into the HTTP API's answers and the outcome webhooks. They never repeat the provider's own
message (which can name internal systems, or echo input back); the machine-readable ``reason`` and
``code`` travel next to them for job boards that write their own wording.
"""

from __future__ import annotations

from collections.abc import Mapping

from worker.states import Reason, Status

__all__ = ["BY_REASON", "BY_STATUS", "FALLBACK", "public_message"]

#: Outcome reasons (see ``worker/routing/router.py``) that deserve their own sentence.
BY_REASON: Mapping[str, str] = {
    Reason.ALREADY_APPLIED: "You've already applied to this position.",
    Reason.JOB_CLOSED: "This job is closed.",
    Reason.NOT_SUPPORTED: "This employer does not accept applications through this site.",
    Reason.INTEGRATION_DELETED: "This employer no longer accepts applications through this site.",
    Reason.INVALID_INPUT: "The employer's system did not accept some of your details; we're looking into it.",
}

#: Every other case, by status.
BY_STATUS: Mapping[str, str] = {
    Status.QUEUED: "Your application is being sent to the employer.",
    Status.IN_FLIGHT: "Your application is being sent to the employer.",
    Status.RETRY_SCHEDULED: "Your application is being sent to the employer.",
    Status.SUCCEEDED: "Your application has been sent to the employer.",
    Status.PARKED: "Your application is delayed; we're looking into it.",
    Status.TERMINAL: "Your application could not be sent to the employer.",
    Status.CANCELLED: "Your application was withdrawn.",
}


#: For a status added later without its own sentence (this runs inside the attempt's transaction: never raise).
FALLBACK = "Your application is being processed."


def public_message(status: str, reason: str | None) -> str:
    """The sentence for a submission in ``status`` that ended (or paused) for ``reason``."""
    if status != Status.SUCCEEDED and reason is not None and reason in BY_REASON:
        return BY_REASON[reason]
    return BY_STATUS.get(status, FALLBACK)
