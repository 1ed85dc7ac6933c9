"""StackOne's routing table: no codes, so the HTTP status, the ATS's own relayed status, and per-ATS quirks."""

from __future__ import annotations

from collections.abc import Mapping

from worker.routing.rules import (
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

__all__ = ["ATS_QUIRKS", "ROUTES", "STACKONE_STATUSES", "STACKONE_UPSTREAM"]

#: What a status means for one ATS behind StackOne (StackOne's connector-errors guide and common quirks).
ATS_QUIRKS: Mapping[tuple[str, int], Rule] = {
    ("greenhouse", 404): park(
        Reason.REAUTHENTICATION_REQUIRED,
        "Greenhouse answers 404 on writes when the on-behalf-of user chosen at account linking is invalid: "
        "ask the customer to re-authenticate the Greenhouse account (StackOne's Greenhouse guide), then requeue.",
    ),
    ("teamtailor", 501): park(
        Reason.PERMISSION_MISSING,
        "Teamtailor answers 501 when its API key lacks permissions: ask the customer to re-authenticate "
        "with a key that has them (StackOne's Teamtailor guide), then requeue.",
    ),
    ("lever", 403): park(
        Reason.ACCOUNT_SETTINGS,
        "Lever's account settings block this operation: ask the customer to contact a Lever super admin "
        "to update the API settings, then requeue.",
    ),
    ("lever", 500): retry(
        Reason.PROVIDER_ERROR,
        unknown_outcome=True,
        max_attempts=3,
        remediation="Lever or StackOne failed repeatedly: contact StackOne support with the attempts' times, "
        "then requeue.",
    ),
}

_STACKONE_FIX_INPUT = (
    "Fix the payload: see provider_errors on the attempt (the ATS's own answer), then: "
    "applyq requeue ID --set FIELD=VALUE"
)
_STACKONE_REAUTH = (
    "The ATS refused the linked account (credentials or permissions): ask the customer to re-authenticate "
    "the account in StackOne with the permissions to create applications, then requeue."
)
_STACKONE_SUPPORT = (
    "StackOne failed repeatedly: check status.stackone.com, else contact StackOne support; then requeue."
)

# StackOne documents 409 both as "The resource to be created already exists" (unified API error guide) and as
# "Request conflicts with current resource state" (connector errors, seed 002), and StackOne's create has no
# duplicate check of its own. So a 409 is not taken for "already applied": after an unknown outcome of ours it
# reconciles; otherwise it parks, and a requeue looks the application up (found: succeeded) before sending.
_CONFLICT = park(
    Reason.CONFLICT,
    "StackOne answered 409: the application already exists, or it conflicts with the ATS's state (StackOne "
    "documents both). Requeue: applyq looks the application up first (found: succeeded). Else cancel.",
    unknown_outcome=True,
    reconcile=True,
)

#: The ATS's own status, read from ``provider_errors[].status`` under a relayed StackOne status.
STACKONE_UPSTREAM: Mapping[int, Rule] = {
    400: park(Reason.INVALID_INPUT, _STACKONE_FIX_INPUT),
    401: park(Reason.REAUTHENTICATION_REQUIRED, _STACKONE_REAUTH),
    403: park(Reason.REAUTHENTICATION_REQUIRED, _STACKONE_REAUTH),
    404: park(Reason.NOT_FOUND, "The ATS does not know the job: check job_id with the customer, then requeue."),
    408: retry(Reason.TIMEOUT, unknown_outcome=True),
    409: _CONFLICT,
    422: park(Reason.INVALID_INPUT, _STACKONE_FIX_INPUT),
    429: retry(Reason.RATE_LIMITED),
    500: retry(Reason.PROVIDER_ERROR, unknown_outcome=True, max_attempts=3, remediation=_STACKONE_SUPPORT),
    502: retry(Reason.BAD_GATEWAY, unknown_outcome=True),
    503: retry(Reason.UNAVAILABLE),
    504: retry(Reason.GATEWAY_TIMEOUT, unknown_outcome=True),
}

#: StackOne has no fine codes: the HTTP status decides (every status of the create-application spec).

STACKONE_STATUSES: Mapping[int, Rule] = {
    200: retry(Reason.UNREADABLE_SUCCESS, unknown_outcome=True, max_attempts=3, remediation=UNREADABLE_SUCCESS),
    400: park(Reason.INVALID_INPUT, _STACKONE_FIX_INPUT),
    401: hold(
        Reason.CONFIGURATION,
        "APPLYQ_STACKONE_API_KEY is missing, invalid or expired: rotate it, then: applyq resume --provider stackone",
    ),
    403: park(
        Reason.REAUTHENTICATION_REQUIRED,
        "Forbidden: ask the customer to re-authenticate the linked account with the permissions to create "
        "applications; if provider_errors is empty, check the StackOne API key's scopes. Then requeue.",
    ),
    404: park(
        Reason.NOT_FOUND,
        "Not found: check job_id and the account id (x-account-id); for Greenhouse, ask the customer to "
        "re-authenticate (invalid on-behalf-of user). Then requeue.",
    ),
    408: retry(Reason.TIMEOUT, unknown_outcome=True),
    409: _CONFLICT,
    412: park(
        Reason.ACCOUNT_DISABLED,
        "The linked account is disabled, suspended or expired: ask the customer to enable or re-link it in "
        "StackOne, then requeue.",
    ),
    422: park(Reason.INVALID_INPUT, _STACKONE_FIX_INPUT),
    429: retry(Reason.RATE_LIMITED),
    500: retry(Reason.PROVIDER_ERROR, unknown_outcome=True, max_attempts=3, remediation=_STACKONE_SUPPORT),
    # "501 | Not Implemented | Feature not supported for this provider" (StackOne connector errors, seed 002):
    # no requeue fixes it. Teamtailor's 501 for missing permissions is an ATS quirk (ATS_QUIRKS) and parks.
    501: terminal(
        Reason.NOT_SUPPORTED,
        "StackOne does not support creating applications for this ATS: nothing to retry (check with StackOne).",
    ),
    502: retry(Reason.BAD_GATEWAY, unknown_outcome=True),
    503: retry(Reason.UNAVAILABLE),
    504: retry(Reason.GATEWAY_TIMEOUT, unknown_outcome=True),
}


ROUTES = ProviderRoutes(
    codes={},
    statuses=STACKONE_STATUSES,
    unknown_code=park(Reason.UNKNOWN_CODE, "StackOne sends no codes; if you see this, report it."),
    transport=TRANSPORT_RULES,
    quirks=ATS_QUIRKS,
    relayed=frozenset({400, 401, 403, 500, 502}),
    upstream=STACKONE_UPSTREAM,
)
