"""The error-code router: declarative tables from each provider's answer to one ``Rule``.

Lookup order, most specific first:
1. the provider's error code (Kombo ``error.code``, Celper ``error``), when there is one;
2. a transport failure (timeout, connection lost, never connected);
3. the HTTP status (only when there is no code), then the status class (4xx, 5xx);
4. an unknown code is parked, never retried blindly and never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.providers.base import ErrorKind, ProviderError
from worker.states import Decision, Provider

__all__ = ["ROUTES", "ProviderRoutes", "Rule", "route"]


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do with one kind of answer."""

    decision: Decision
    #: short machine-readable reason, stored as ``outcome_reason`` and used in logs
    reason: str
    #: operator-facing "what to do", shown by ``applyq status``
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
    fallback = 200 if 200 <= status < 300 else 500 if status >= 500 else 400
    return table.statuses.get(status, table.statuses[fallback])
