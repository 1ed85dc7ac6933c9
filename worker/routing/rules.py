"""The vocabulary of routing tables: a ``Rule`` per kind of answer, and the rules every provider shares.

A provider's table (``kombo.py``, ``stackone.py``, ``celper.py``) is data built from ``retry``, ``park`` and
``terminal``; ``router.route`` looks an answer up in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.providers.base import ErrorKind
from worker.states import Decision, Reason

__all__ = [
    "CONFIG",
    "FIX_INPUT",
    "HTTP_STATUS_RULES",
    "SUPPORT",
    "TRANSPORT_RULES",
    "UNREADABLE_SUCCESS",
    "ProviderRoutes",
    "Rule",
    "hold",
    "park",
    "retry",
    "terminal",
]


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do with one kind of answer."""

    decision: Decision
    #: short machine-readable reason, stored as ``outcome_reason`` and used in logs
    reason: Reason
    #: operator-facing "what to do", shown by ``applyq status`` (for a retry rule: once retries are exhausted)
    remediation: str = ""
    #: the request may have reached the provider although the answer is not trustworthy
    unknown_outcome: bool = False
    #: minimum wait before retrying, in seconds
    floor_s: float = 0.0
    #: wait ``Settings.sync_pending_delay_s`` (hours) instead of backing off
    long_wait: bool = False
    #: at most this many attempts for this kind of failure, then park as ``retries_exhausted``
    max_attempts: int | None = None
    #: "already exists" (or may): success if an earlier attempt of ours had an unknown outcome
    reconcile: bool = False
    #: a configuration error of the whole API key (revoked key, IP not allow-listed): hold every submission of
    #: the key and probe now and then, instead of parking each one for the same single fix
    holds_key: bool = False
    #: a "too fast" answer about the whole API key, not the one integration: cool every integration of the key
    key_wide: bool = False


def retry(reason: Reason, **kw: object) -> Rule:
    """Try again after a backoff (``kw``: the other ``Rule`` fields)."""
    return Rule(Decision.RETRY, reason, **kw)  # type: ignore[arg-type]


def park(reason: Reason, remediation: str, *, unknown_outcome: bool = False, reconcile: bool = False) -> Rule:
    """Stop until a human acts; ``remediation`` tells them what to do.

    ``unknown_outcome``: the request may have created the application, so a requeue looks it up before sending.
    """
    return Rule(Decision.PARK, reason, remediation, unknown_outcome=unknown_outcome, reconcile=reconcile)


def hold(reason: Reason, remediation: str) -> Rule:
    """Hold the provider key: the submission waits (no attempt of its budget used) until a probe succeeds.

    ``remediation`` says what to fix; then ``applyq resume --provider P``, or the next probe, releases it.
    """
    return Rule(Decision.RETRY, reason, remediation, holds_key=True)


def terminal(reason: Reason, remediation: str, *, reconcile: bool = False) -> Rule:
    """End for good (a business outcome such as a closed job)."""
    return Rule(Decision.TERMINAL, reason, remediation, reconcile=reconcile)


@dataclass(frozen=True)
class ProviderRoutes:
    """One provider's routing table."""

    codes: Mapping[str, Rule]
    statuses: Mapping[int, Rule]
    unknown_code: Rule
    transport: Mapping[ErrorKind, Rule] = field(default_factory=dict)
    #: (ATS, HTTP status) → rule: what a status means for one ATS (named by the integration id's prefix)
    quirks: Mapping[tuple[str, int], Rule] = field(default_factory=dict)
    #: statuses under which the ATS's own status (``provider_errors[].status``) says more than ours
    relayed: frozenset[int] = frozenset()
    #: the ATS's own status → rule, for a ``relayed`` status
    upstream: Mapping[int, Rule] = field(default_factory=dict)


FIX_INPUT = "Fix the payload (see the message), then: applyq requeue ID --set FIELD=VALUE"
CONFIG = "Check applyq's provider configuration (API key, allow-listed IP), then: applyq resume --provider P"
SUPPORT = "Open the log_url; if the cause is unclear, share it with the provider's support, then requeue."

TRANSPORT_RULES: Mapping[ErrorKind, Rule] = {
    ErrorKind.TIMEOUT: retry(Reason.TIMEOUT, unknown_outcome=True),
    ErrorKind.CONNECTION_LOST: retry(Reason.CONNECTION_LOST, unknown_outcome=True),
    ErrorKind.CONNECT_ERROR: retry(Reason.UNREACHABLE),
}

#: HTTP status fallback, used only when an answer carries no code. Keys 400 and 500 also serve
#: as the defaults for their whole class.
HTTP_STATUS_RULES: Mapping[int, Rule] = {
    200: retry(Reason.UNREADABLE_SUCCESS, unknown_outcome=True, max_attempts=3),
    400: park(Reason.REJECTED, FIX_INPUT),
    401: hold(Reason.CONFIGURATION, CONFIG),
    403: hold(Reason.CONFIGURATION, CONFIG),
    408: retry(Reason.TIMEOUT, unknown_outcome=True),
    409: park(Reason.CONFLICT, SUPPORT),
    429: retry(Reason.RATE_LIMITED),
    500: retry(Reason.PROVIDER_ERROR, unknown_outcome=True, max_attempts=3),
    502: retry(Reason.BAD_GATEWAY, unknown_outcome=True),
    503: retry(Reason.UNAVAILABLE),
    504: retry(Reason.GATEWAY_TIMEOUT, unknown_outcome=True),
}

UNREADABLE_SUCCESS = (
    "The provider answered success in a form applyq cannot read: check in the ATS whether the application "
    "exists; if not, requeue."
)
