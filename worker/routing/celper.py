"""Celper's routing table: every code of its error table (seed 001), else the HTTP status."""

from __future__ import annotations

from collections.abc import Mapping

from worker.routing.rules import (
    FIX_INPUT,
    TRANSPORT_RULES,
    UNREADABLE_SUCCESS,
    ProviderRoutes,
    Rule,
    hold,
    park,
    retry,
    terminal,
)
from worker.states import Reason

__all__ = ["CELPER_CODES", "CELPER_STATUSES", "ROUTES"]

_CELPER_KEY = "APPLYQ_CELPER_API_KEY"
_CELPER_SUPPORT = "Celper failed 3 times: check with Celper support (quote the requestId), then requeue."
_CELPER_STATE = (
    "Celper reported a state conflict that does not apply to importing a candidate: check the candidate in "
    "Celper (the import may already be done), then requeue or cancel."
)

#: Every code of Celper's error table (seed 001) plus INTERNAL_ERROR; four conflicts share HTTP 409.
CELPER_CODES: Mapping[str, Rule] = {
    "UNAUTHORIZED": hold(
        Reason.CONFIGURATION,
        f"{_CELPER_KEY} is missing, invalid, revoked or expired: rotate it, then: applyq resume --provider celper",
    ),
    "IP_NOT_ALLOWED": hold(
        Reason.CONFIGURATION,
        "Add this host's egress IP to the Celper API key's allow-list, then: applyq resume --provider celper",
    ),
    "SCOPE_INSUFFICIENT": hold(
        Reason.CONFIGURATION,
        f"{_CELPER_KEY} lacks the 'write:candidates' scope: issue a key with it, then: applyq resume --provider celper",
    ),
    "FORBIDDEN": hold(
        Reason.CONFIGURATION,
        f"Celper denied the role, or {_CELPER_KEY}'s creator lost access: issue a new key from an owner or "
        "admin, then: applyq resume --provider celper",
    ),
    "API_DISABLED": hold(
        Reason.CONFIGURATION,
        "API access is disabled for the company: enable it (Celper dashboard), then: applyq resume --provider celper",
    ),
    "ACCOUNT_SUSPENDED": hold(
        Reason.CONFIGURATION,
        "The Celper company account is suspended: contact Celper, then: applyq resume --provider celper",
    ),
    "RATE_LIMITED": retry(Reason.RATE_LIMITED),
    "VALIDATION_ERROR": park(
        Reason.INVALID_INPUT,
        "Fix the payload: see the message and the field errors (details) on the attempt, then: "
        "applyq requeue ID --set FIELD=VALUE",
    ),
    "INVALID_BODY": park(
        Reason.INVALID_BODY, "Celper could not parse applyq's JSON body: a bug in applyq; report it with the attempt."
    ),
    # Celper: "Verify the ID and that jobPositionId is correct" (CelperAI/skills api/SKILL.md; seed 001): a wrong
    # job id is fixable, so park for the operator rather than end the submission.
    "NOT_FOUND": park(
        Reason.JOB_NOT_FOUND,
        "Celper has no such job position: check job_id (jobPositionId), then: applyq requeue ID --set job_id=…",
    ),
    "DUPLICATE_CANDIDATE": terminal(
        Reason.ALREADY_APPLIED, "The candidate's email is already in this job position in Celper.", reconcile=True
    ),
    "INVALID_STATUS": park(Reason.STATE_CONFLICT, _CELPER_STATE),
    "INVALID_STATUS_TRANSITION": park(Reason.STATE_CONFLICT, _CELPER_STATE),
    "ANALYSIS_NOT_VIEWED": park(Reason.STATE_CONFLICT, _CELPER_STATE),
    "ACTIVE_SESSION": park(Reason.STATE_CONFLICT, _CELPER_STATE),
    "WEBHOOK_LIMIT_REACHED": park(
        Reason.CONFIGURATION, "Celper refused over its webhook limit (5): remove an unused webhook, then requeue."
    ),
    "IDEMPOTENCY_CONFLICT": park(
        Reason.IDEMPOTENCY_CONFLICT,
        "Celper has seen this submission's Idempotency-Key with another body: applyq sends a new key with every "
        "edited payload, so this is a bug or another client using the key; report it. Celper forgets a key after "
        "24 hours: requeue after that.",
    ),
    "INTERNAL_ERROR": retry(Reason.PROVIDER_ERROR, unknown_outcome=True, max_attempts=3, remediation=_CELPER_SUPPORT),
}

#: Celper's status fallback, when an answer is not in Celper's format; the vendor bounds 5xx to 3 attempts.
CELPER_STATUSES: Mapping[int, Rule] = {
    200: retry(Reason.UNREADABLE_SUCCESS, unknown_outcome=True, max_attempts=3, remediation=UNREADABLE_SUCCESS),
    400: park(Reason.REJECTED, FIX_INPUT),
    401: hold(Reason.CONFIGURATION, f"{_CELPER_KEY} was refused: check it, then: applyq resume --provider celper"),
    403: hold(
        Reason.CONFIGURATION,
        f"Celper refused {_CELPER_KEY}: check its scopes and IP allow-list, then: applyq resume --provider celper",
    ),
    404: hold(
        Reason.CONFIGURATION,
        "No Celper endpoint here: check APPLYQ_CELPER_BASE_URL, then: applyq resume --provider celper",
    ),
    409: park(Reason.CONFLICT, _CELPER_STATE),
    429: retry(Reason.RATE_LIMITED),
    500: retry(Reason.PROVIDER_ERROR, unknown_outcome=True, max_attempts=3, remediation=_CELPER_SUPPORT),
    502: retry(Reason.BAD_GATEWAY, unknown_outcome=True, max_attempts=3, remediation=_CELPER_SUPPORT),
    503: retry(Reason.UNAVAILABLE, max_attempts=3, remediation=_CELPER_SUPPORT),
    504: retry(Reason.GATEWAY_TIMEOUT, unknown_outcome=True, max_attempts=3, remediation=_CELPER_SUPPORT),
}


ROUTES = ProviderRoutes(
    codes=CELPER_CODES,
    statuses=CELPER_STATUSES,
    unknown_code=park(
        Reason.UNKNOWN_CODE,
        "A Celper code applyq does not know: read the message (quote the requestId to Celper), "
        "then add it to worker/routing/celper.py.",
    ),
    transport=TRANSPORT_RULES,
)
