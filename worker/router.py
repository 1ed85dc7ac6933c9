"""The error-code router: declarative tables from each provider's answer to one ``Rule``.

Lookup order, most specific first:
1. the provider's error code (Kombo ``error.code``, Celper ``error``), when there is one;
2. a transport failure (timeout, connection lost, never connected);
3. the HTTP status (only when there is no code; StackOne has none):
   a. an ATS quirk: what a status means for the ATS the integration id names (``greenhouse:…``);
   b. for a status a unified API relays, the ATS's own status (StackOne ``provider_errors[].status``);
   c. the status, then its class (2xx, 4xx, 5xx);
4. an unknown code is parked, never retried blindly and never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.providers.base import ErrorKind, ProviderError
from worker.states import Decision, Provider

__all__ = ["ROUTES", "ProviderRoutes", "Rule", "ats_name", "route", "upstream_status"]


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do with one kind of answer."""

    decision: Decision
    #: short machine-readable reason, stored as ``outcome_reason`` and used in logs
    reason: str
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
    #: "already exists": success if an earlier attempt of ours had an unknown outcome
    reconcile: bool = False


def _retry(reason: str, **kw: object) -> Rule:
    return Rule(Decision.RETRY, reason, **kw)  # type: ignore[arg-type]


def _park(reason: str, remediation: str) -> Rule:
    return Rule(Decision.PARK, reason, remediation)


def _terminal(reason: str, remediation: str, *, reconcile: bool = False) -> Rule:
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


_FIX_INPUT = "Fix the payload (see the message), then: applyq requeue ID --set FIELD=VALUE"
_REAUTH = "Ask the customer to re-authenticate the integration in Kombo Connect, then requeue."
_CONFIG = "Check applyq's provider configuration (API key, allow-listed IP), then requeue."
_SETUP = "The customer or their admin must finish or enable the integration setup in Kombo, then requeue."
_SUPPORT = "Open the log_url; if the cause is unclear, share it with the provider's support, then requeue."

TRANSPORT_RULES: Mapping[ErrorKind, Rule] = {
    ErrorKind.TIMEOUT: _retry("timeout", unknown_outcome=True),
    ErrorKind.CONNECTION_LOST: _retry("connection_lost", unknown_outcome=True),
    ErrorKind.CONNECT_ERROR: _retry("unreachable"),
}

#: HTTP status fallback, used only when an answer carries no code. Keys 400 and 500 also serve
#: as the defaults for their whole class.
HTTP_STATUS_RULES: Mapping[int, Rule] = {
    200: _retry("unreadable_success", unknown_outcome=True, max_attempts=3),
    400: _park("rejected", _FIX_INPUT),
    401: _park("configuration", _CONFIG),
    403: _park("configuration", _CONFIG),
    408: _retry("timeout", unknown_outcome=True),
    409: _park("conflict", _SUPPORT),
    429: _retry("rate_limited"),
    500: _retry("provider_error", unknown_outcome=True, max_attempts=3),
    502: _retry("bad_gateway", unknown_outcome=True),
    503: _retry("unavailable"),
    504: _retry("gateway_timeout", unknown_outcome=True),
}

KOMBO_CODES: Mapping[str, Rule] = {
    # PLATFORM: Kombo itself
    "PLATFORM.RATE_LIMIT_EXCEEDED": _retry("rate_limited"),
    "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED": _retry("concurrency_limited", floor_s=1.0),
    "PLATFORM.INTEGRATION_NOT_FOUND": _park(
        "integration_not_found", "The integration id is unknown to Kombo: check it with the customer."
    ),
    "PLATFORM.INPUT_INVALID": _park("invalid_input", _FIX_INPUT),
    "PLATFORM.UNKNOWN_ERROR": _retry("provider_error", unknown_outcome=True, max_attempts=2),
    "PLATFORM.IP_NOT_WHITELISTED": _park(
        "configuration", "Allow-list this host's egress IP in the Kombo dashboard, then requeue."
    ),
    "PLATFORM.AUTHENTICATION_INVALID": _park(
        "configuration", "APPLYQ_KOMBO_API_KEY is invalid or revoked: rotate it, then requeue."
    ),
    "PLATFORM.TASK_TIMED_OUT": _retry("provider_timeout", unknown_outcome=True, max_attempts=3),
    # INTEGRATION: the customer's connection to their ATS
    "INTEGRATION.PERMISSION_MISSING": _park(
        "permission_missing",
        "Ask the customer to grant the 'Create applications and candidates' permission "
        "(and re-authenticate), then: applyq requeue --code INTEGRATION.PERMISSION_MISSING "
        "--integration ID --all",
    ),
    "INTEGRATION.AUTHENTICATION_INVALID": _park("reauthentication_required", _REAUTH),
    "INTEGRATION.QA_FAILED": _park("integration_setup", _SETUP),
    "INTEGRATION.SETUP_SYNC_PENDING": _retry("setup_sync_pending", long_wait=True),
    "INTEGRATION.SETUP_INCOMPLETE": _park("integration_setup", _SETUP),
    "INTEGRATION.INACTIVE": _park("integration_inactive", "The integration is inactive: reactivate it."),
    "INTEGRATION.MODEL_NOT_AVAILABLE": _terminal(
        "not_supported", "This ATS does not support applications through Kombo."
    ),
    "INTEGRATION.MODEL_DISABLED": _park("integration_setup", _SETUP),
    "INTEGRATION.ACTION_NOT_AVAILABLE": _terminal(
        "not_supported", "This ATS does not support creating applications through Kombo."
    ),
    "INTEGRATION.ACTION_DISABLED": _park("integration_setup", _SETUP),
    # REMOTE: the ATS behind Kombo
    "REMOTE.SERVICE_UNAVAILABLE": _retry("unavailable"),
    "REMOTE.RATE_LIMIT_EXCEEDED": _retry("rate_limited"),
    "REMOTE.INPUT_INVALID": _park("invalid_input", _FIX_INPUT),
    "REMOTE.UNKNOWN_HTTP_ERROR": _park("remote_error", _SUPPORT),
    # ATS: business outcomes
    "ATS.JOB_CLOSED": _terminal("job_closed", "The job is closed: tell the candidate; nothing to retry."),
    "ATS.APPLICATION_ALREADY_EXISTS": _terminal(
        "already_applied", "The candidate already applied to this job.", reconcile=True
    ),
}

#: What a status means for one ATS behind StackOne (StackOne's connector-errors guide and common quirks).
ATS_QUIRKS: Mapping[tuple[str, int], Rule] = {
    ("greenhouse", 404): _park(
        "reauthentication_required",
        "Greenhouse answers 404 on writes when the on-behalf-of user chosen at account linking is invalid: "
        "ask the customer to re-authenticate the Greenhouse account (StackOne's Greenhouse guide), then requeue.",
    ),
    ("teamtailor", 501): _park(
        "permission_missing",
        "Teamtailor answers 501 when its API key lacks permissions: ask the customer to re-authenticate "
        "with a key that has them (StackOne's Teamtailor guide), then requeue.",
    ),
    ("lever", 403): _park(
        "account_settings",
        "Lever's account settings block this operation: ask the customer to contact a Lever super admin "
        "to update the API settings, then requeue.",
    ),
    ("lever", 500): _retry(
        "provider_error",
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

#: The ATS's own status, read from ``provider_errors[].status`` under a relayed StackOne status.
STACKONE_UPSTREAM: Mapping[int, Rule] = {
    400: _park("invalid_input", _STACKONE_FIX_INPUT),
    401: _park("reauthentication_required", _STACKONE_REAUTH),
    403: _park("reauthentication_required", _STACKONE_REAUTH),
    404: _park("not_found", "The ATS does not know the job: check job_id with the customer, then requeue."),
    408: _retry("timeout", unknown_outcome=True),
    409: _terminal("already_applied", "The candidate already applied to this job.", reconcile=True),
    422: _park("invalid_input", _STACKONE_FIX_INPUT),
    429: _retry("rate_limited"),
    500: _retry("provider_error", unknown_outcome=True, max_attempts=3, remediation=_STACKONE_SUPPORT),
    502: _retry("bad_gateway", unknown_outcome=True),
    503: _retry("unavailable"),
    504: _retry("gateway_timeout", unknown_outcome=True),
}

#: StackOne has no fine codes: the HTTP status decides (every status of the create-application spec).
_UNREADABLE_SUCCESS = (
    "The provider answered success in a form applyq cannot read: check in the ATS whether the application "
    "exists; if not, requeue."
)

STACKONE_STATUSES: Mapping[int, Rule] = {
    200: _retry("unreadable_success", unknown_outcome=True, max_attempts=3, remediation=_UNREADABLE_SUCCESS),
    400: _park("invalid_input", _STACKONE_FIX_INPUT),
    401: _park("configuration", "APPLYQ_STACKONE_API_KEY is missing, invalid or expired: rotate it, then requeue."),
    403: _park(
        "reauthentication_required",
        "Forbidden: ask the customer to re-authenticate the linked account with the permissions to create "
        "applications; if provider_errors is empty, check the StackOne API key's scopes. Then requeue.",
    ),
    404: _park(
        "not_found",
        "Not found: check job_id and the account id (x-account-id); for Greenhouse, ask the customer to "
        "re-authenticate (invalid on-behalf-of user). Then requeue.",
    ),
    408: _retry("timeout", unknown_outcome=True),
    409: _terminal("already_applied", "The application already exists in the ATS; nothing to retry.", reconcile=True),
    412: _park(
        "account_disabled",
        "The linked account is disabled, suspended or expired: ask the customer to enable or re-link it in "
        "StackOne, then requeue.",
    ),
    422: _park("invalid_input", _STACKONE_FIX_INPUT),
    429: _retry("rate_limited"),
    500: _retry("provider_error", unknown_outcome=True, max_attempts=3, remediation=_STACKONE_SUPPORT),
    501: _park(
        "not_supported",
        "StackOne does not implement this for the ATS (Teamtailor also answers 501 for missing permissions): "
        "check with StackOne, or ask the customer to re-authenticate; then requeue.",
    ),
    502: _retry("bad_gateway", unknown_outcome=True),
    503: _retry("unavailable"),
    504: _retry("gateway_timeout", unknown_outcome=True),
}

_CELPER_KEY = "APPLYQ_CELPER_API_KEY"
_CELPER_SUPPORT = "Celper failed 3 times: check with Celper support (quote the requestId), then requeue."
_CELPER_STATE = (
    "Celper reported a state conflict that does not apply to importing a candidate: check the candidate in "
    "Celper (the import may already be done), then requeue or cancel."
)

#: Every code of Celper's error table (seed 001) plus INTERNAL_ERROR; four conflicts share HTTP 409.
CELPER_CODES: Mapping[str, Rule] = {
    "UNAUTHORIZED": _park(
        "configuration", f"{_CELPER_KEY} is missing, invalid, revoked or expired: rotate it, then requeue."
    ),
    "IP_NOT_ALLOWED": _park(
        "configuration", "Add this host's egress IP to the Celper API key's allow-list, then requeue."
    ),
    "SCOPE_INSUFFICIENT": _park(
        "configuration", f"{_CELPER_KEY} lacks the 'write:candidates' scope: issue a key with it, then requeue."
    ),
    "FORBIDDEN": _park(
        "configuration",
        f"Celper denied the role, or {_CELPER_KEY}'s creator lost access: issue a new key from an owner or "
        "admin, then requeue.",
    ),
    "API_DISABLED": _park(
        "configuration", "API access is disabled for the company: enable it in the Celper dashboard, then requeue."
    ),
    "ACCOUNT_SUSPENDED": _park(
        "configuration", "The Celper company account is suspended: contact Celper, then requeue."
    ),
    "RATE_LIMITED": _retry("rate_limited"),
    "VALIDATION_ERROR": _park(
        "invalid_input",
        "Fix the payload: see the message and the field errors (details) on the attempt, then: "
        "applyq requeue ID --set FIELD=VALUE",
    ),
    "INVALID_BODY": _park(
        "invalid_body", "Celper could not parse applyq's JSON body: a bug in applyq; report it with the attempt."
    ),
    "NOT_FOUND": _terminal(
        "job_not_found", "Celper has no such job position: check job_id (jobPositionId); nothing to retry."
    ),
    "DUPLICATE_CANDIDATE": _terminal(
        "already_applied", "The candidate's email is already in this job position in Celper.", reconcile=True
    ),
    "INVALID_STATUS": _park("state_conflict", _CELPER_STATE),
    "INVALID_STATUS_TRANSITION": _park("state_conflict", _CELPER_STATE),
    "ANALYSIS_NOT_VIEWED": _park("state_conflict", _CELPER_STATE),
    "ACTIVE_SESSION": _park("state_conflict", _CELPER_STATE),
    "WEBHOOK_LIMIT_REACHED": _park(
        "configuration", "Celper refused over its webhook limit (5): remove an unused webhook, then requeue."
    ),
    "IDEMPOTENCY_CONFLICT": _park(
        "idempotency_conflict",
        "Celper has seen this submission's Idempotency-Key with another body (the payload was edited with "
        "requeue --set, or a bug in applyq). Celper forgets a key after 24 hours: requeue after that.",
    ),
    "INTERNAL_ERROR": _retry("provider_error", unknown_outcome=True, max_attempts=3, remediation=_CELPER_SUPPORT),
}

#: Celper's status fallback, when an answer is not in Celper's format; the vendor bounds 5xx to 3 attempts.
CELPER_STATUSES: Mapping[int, Rule] = {
    200: _retry("unreadable_success", unknown_outcome=True, max_attempts=3, remediation=_UNREADABLE_SUCCESS),
    400: _park("rejected", _FIX_INPUT),
    401: _park("configuration", f"{_CELPER_KEY} was refused: check it, then requeue."),
    403: _park("configuration", f"Celper refused {_CELPER_KEY}: check its scopes and IP allow-list, then requeue."),
    404: _park("configuration", "No Celper endpoint here: check APPLYQ_CELPER_BASE_URL, then requeue."),
    409: _park("conflict", _CELPER_STATE),
    429: _retry("rate_limited"),
    500: _retry("provider_error", unknown_outcome=True, max_attempts=3, remediation=_CELPER_SUPPORT),
    502: _retry("bad_gateway", unknown_outcome=True, max_attempts=3, remediation=_CELPER_SUPPORT),
    503: _retry("unavailable", max_attempts=3, remediation=_CELPER_SUPPORT),
    504: _retry("gateway_timeout", unknown_outcome=True, max_attempts=3, remediation=_CELPER_SUPPORT),
}

ROUTES: Mapping[Provider, ProviderRoutes] = {
    Provider.KOMBO: ProviderRoutes(
        codes=KOMBO_CODES,
        statuses=HTTP_STATUS_RULES,
        unknown_code=_park(
            "unknown_code",
            "A code applyq does not know: open the log_url, then add it to worker/router.py.",
        ),
        transport=TRANSPORT_RULES,
    ),
    Provider.STACKONE: ProviderRoutes(
        codes={},
        statuses=STACKONE_STATUSES,
        unknown_code=_park("unknown_code", "StackOne sends no codes; if you see this, report it."),
        transport=TRANSPORT_RULES,
        quirks=ATS_QUIRKS,
        relayed=frozenset({400, 401, 403, 500, 502}),
        upstream=STACKONE_UPSTREAM,
    ),
    Provider.CELPER: ProviderRoutes(
        codes=CELPER_CODES,
        statuses=CELPER_STATUSES,
        unknown_code=_park(
            "unknown_code",
            "A Celper code applyq does not know: read the message (quote the requestId to Celper), "
            "then add it to worker/router.py.",
        ),
        transport=TRANSPORT_RULES,
    ),
}


def route(provider: Provider, error: ProviderError, integration_id: str | None = None) -> Rule:
    """The rule for one failed attempt; the most specific match wins.

    ``integration_id`` names the ATS behind a unified API where it can (Kombo ids start with it, e.g.
    ``greenhouse:…``), for ATS-specific quirks.
    """
    table = ROUTES[provider]
    if error.code is not None:
        return table.codes.get(error.code, table.unknown_code)
    if error.kind in table.transport:
        return table.transport[error.kind]
    status = error.http_status or 0
    upstream = upstream_status(error) if status in table.relayed else None
    ats = ats_name(integration_id)
    for seen in (upstream, status):
        if ats is not None and seen is not None and (ats, seen) in table.quirks:
            return table.quirks[(ats, seen)]
    if upstream is not None and upstream in table.upstream:
        return table.upstream[upstream]
    fallback = 200 if 200 <= status < 300 else 500 if status >= 500 else 400
    return table.statuses.get(status, table.statuses[fallback])


def ats_name(integration_id: str | None) -> str | None:
    """The ATS an integration id names by its prefix (``greenhouse:abc`` → ``greenhouse``), if any."""
    prefix, separator, _ = (integration_id or "").partition(":")
    if not separator:
        return None
    return prefix.strip().lower() or None


def upstream_status(error: ProviderError) -> int | None:
    """The first ATS status in ``details["provider_errors"]`` (StackOne), if there is one."""
    entries = (error.details or {}).get("provider_errors")
    for entry in entries if isinstance(entries, list) else []:
        status = entry.get("status") if isinstance(entry, dict) else None
        if isinstance(status, int | float) and not isinstance(status, bool):
            return int(status)
    return None
