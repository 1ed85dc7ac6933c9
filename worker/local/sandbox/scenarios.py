"""Scripted provider behaviour, chosen by the job id's prefix; pure and provider-neutral.

A job id ``<scenario>[N]--<rest>`` picks a scenario; a job id without ``--`` or with an unknown
scenario behaves as ``ok``. Transient scenarios misbehave on the first N attempts (default 1) and
then succeed; permanent ones misbehave on every attempt unless N is given. Independently of the job
id, a candidate whose email domain is ``invalid.example`` is always rejected as invalid input, so
an operator can fix such a submission by editing the email.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["REJECTED_EMAIL_DOMAIN", "Behaviour", "Outcome", "Scenario", "decide", "parse_scenario"]

#: Candidates with an email address at this domain are always rejected as invalid input.
REJECTED_EMAIL_DOMAIN = "invalid.example"

_SEPARATOR = "--"
_NAME_AND_COUNT = re.compile(r"(?P<name>.*?)(?P<count>\d*)")


class Outcome(StrEnum):
    """What the provider answers, independent of its wire format."""

    CREATED = "created"
    RATE_LIMITED = "rate_limited"
    #: the ATS behind the provider said 429 and the provider relays it (Kombo ``REMOTE.RATE_LIMIT_EXCEEDED``):
    #: the integration's limit, not the API key's
    REMOTE_RATE_LIMITED = "remote_rate_limited"
    CONCURRENCY_LIMITED = "concurrency_limited"
    UNAVAILABLE = "unavailable"
    GATEWAY_HTML = "gateway_html"
    TRUNCATED_BODY = "truncated_body"
    EMPTY_BODY = "empty_body"
    NULL_CODE = "null_code"
    TIMED_OUT = "timed_out"
    SYNC_PENDING = "sync_pending"
    EMAIL_REJECTED = "email_rejected"
    JOB_CLOSED = "job_closed"
    ALREADY_APPLIED = "already_applied"
    PERMISSION_MISSING = "permission_missing"
    REAUTH_REQUIRED = "reauth_required"
    UNKNOWN_CODE = "unknown_code"
    INPUT_INVALID = "input_invalid"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Behaviour:
    """One answer: what to say, whether the application is created first, whether to stall first."""

    outcome: Outcome
    creates: bool = False
    stalls: bool = False


_SUCCESS = Behaviour(Outcome.CREATED, creates=True)

#: Scenarios that misbehave once by default, then succeed.
_TRANSIENT: dict[str, Behaviour] = {
    "ratelimit": Behaviour(Outcome.RATE_LIMITED),
    "remoteratelimit": Behaviour(Outcome.REMOTE_RATE_LIMITED),
    "concurrency": Behaviour(Outcome.CONCURRENCY_LIMITED),
    "unavailable": Behaviour(Outcome.UNAVAILABLE),
    "lb503x": Behaviour(Outcome.GATEWAY_HTML),
    "truncated": Behaviour(Outcome.TRUNCATED_BODY),
    "empty": Behaviour(Outcome.EMPTY_BODY),
    "nullcode": Behaviour(Outcome.NULL_CODE),
    "hang": Behaviour(Outcome.UNAVAILABLE, stalls=True),
    "slowcreate": Behaviour(Outcome.CREATED, creates=True, stalls=True),
    "timedout": Behaviour(Outcome.TIMED_OUT, creates=True),
    "syncpending": Behaviour(Outcome.SYNC_PENDING),
}

#: Scenarios that misbehave on every attempt unless a count is given.
_PERMANENT: dict[str, Behaviour] = {
    "closed": Behaviour(Outcome.JOB_CLOSED),
    "applied": Behaviour(Outcome.ALREADY_APPLIED),
    "permission": Behaviour(Outcome.PERMISSION_MISSING),
    "reauth": Behaviour(Outcome.REAUTH_REQUIRED),
    "unknowncode": Behaviour(Outcome.UNKNOWN_CODE),
    "badinput": Behaviour(Outcome.INPUT_INVALID),
    "notfound": Behaviour(Outcome.NOT_FOUND),
}


@dataclass(frozen=True)
class Scenario:
    """A job's script: how it misbehaves, and on how many first attempts (``None``: all of them)."""

    name: str
    misbehaviour: Behaviour | None = None
    failures: int | None = None

    def misbehaviour_on(self, attempt: int) -> Behaviour | None:
        """The misbehaviour scripted for the 1-based ``attempt``, or ``None`` if it succeeds."""
        if self.failures is not None and attempt > self.failures:
            return None
        return self.misbehaviour


_OK = Scenario("ok")


def parse_scenario(job_id: str) -> Scenario:
    """The scenario named by the job id's prefix (``ratelimit2--job-7``); ``ok`` if there is none."""
    prefix, separator, _ = job_id.removeprefix("remote:").partition(_SEPARATOR)
    match = _NAME_AND_COUNT.fullmatch(prefix.lower())
    if not separator or match is None:
        return _OK
    name, count = match["name"], int(match["count"]) if match["count"] else None
    if name in _TRANSIENT:
        return Scenario(name, _TRANSIENT[name], 1 if count is None else count)
    if name in _PERMANENT:
        return Scenario(name, _PERMANENT[name], count)
    return _OK


def decide(scenario: Scenario, attempt: int, *, already_created: bool, email: str) -> Behaviour:
    """The behaviour for the 1-based ``attempt`` at one (job, candidate) pair.

    A rejected email domain wins, then an application that already exists, then the script.
    ``attempt`` counts every attempt, so a stalled attempt still moves the script on.
    """
    if email.rpartition("@")[2].lower() == REJECTED_EMAIL_DOMAIN:
        return Behaviour(Outcome.EMAIL_REJECTED)
    if already_created:
        return Behaviour(Outcome.ALREADY_APPLIED)
    return scenario.misbehaviour_on(attempt) or _SUCCESS
