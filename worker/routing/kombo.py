"""Kombo's routing table: its ``error.code`` values (Kombo's error-handling guide), else the HTTP status."""

from __future__ import annotations

from collections.abc import Mapping

from worker.providers.base import ErrorKind
from worker.routing.rules import (
    FIX_INPUT,
    HTTP_STATUS_RULES,
    SUPPORT,
    TRANSPORT_RULES,
    ProviderRoutes,
    Rule,
    hold,
    park,
    retry,
    terminal,
)
from worker.states import Reason

__all__ = ["KOMBO_CODES", "ROUTES"]

_REAUTH = "Ask the customer to re-authenticate the integration in Kombo Connect, then requeue."
_SETUP = "The customer or their admin must finish or enable the integration setup in Kombo, then requeue."

KOMBO_CODES: Mapping[str, Rule] = {
    # PLATFORM: Kombo itself
    # Kombo's rate limit "applies to all API requests" of the key, unlike its concurrency limit, which is per
    # integration (Kombo's concurrency-limiting guide, comparison table): a 429 cools the whole key
    "PLATFORM.RATE_LIMIT_EXCEEDED": retry(Reason.RATE_LIMITED, key_wide=True),
    "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED": retry(Reason.CONCURRENCY_LIMITED, floor_s=1.0),
    "PLATFORM.INTEGRATION_NOT_FOUND": park(
        Reason.INTEGRATION_NOT_FOUND, "The integration id is unknown to Kombo: check it with the customer."
    ),
    "PLATFORM.INPUT_INVALID": park(Reason.INVALID_INPUT, FIX_INPUT),
    "PLATFORM.UNKNOWN_ERROR": retry(Reason.PROVIDER_ERROR, unknown_outcome=True, max_attempts=2),
    "PLATFORM.IP_NOT_WHITELISTED": hold(
        Reason.CONFIGURATION,
        "Allow-list this host's egress IP in the Kombo dashboard, then: applyq resume --provider kombo",
    ),
    "PLATFORM.AUTHENTICATION_INVALID": hold(
        Reason.CONFIGURATION,
        "APPLYQ_KOMBO_API_KEY is invalid or revoked: rotate it, then: applyq resume --provider kombo",
    ),
    # Kombo: retry only rate limits and unavailability; "for other errors, avoid automatic retries without
    # human input" (docs.kombo.dev/guides/errors, seed 000). The task may have finished in the ATS, so this is an
    # unknown outcome: the next attempt only looks the application up (a read, not a retry); a send follows
    # only if Kombo shows none, and a second timeout parks for a human.
    "PLATFORM.TASK_TIMED_OUT": retry(
        Reason.PROVIDER_TIMEOUT,
        unknown_outcome=True,
        max_attempts=2,
        remediation="Kombo stopped waiting for the ATS twice; the application may exist. Check the ATS, then "
        "requeue: applyq looks the application up first and sends only if it is not there.",
    ),
    # INTEGRATION: the customer's connection to their ATS
    "INTEGRATION.PERMISSION_MISSING": park(
        Reason.PERMISSION_MISSING,
        "Ask the customer to grant the 'Create applications and candidates' permission "
        "(and re-authenticate), then: applyq requeue --code INTEGRATION.PERMISSION_MISSING "
        "--integration ID --all",
    ),
    "INTEGRATION.AUTHENTICATION_INVALID": park(Reason.REAUTHENTICATION_REQUIRED, _REAUTH),
    "INTEGRATION.QA_FAILED": park(Reason.INTEGRATION_SETUP, _SETUP),
    "INTEGRATION.SETUP_SYNC_PENDING": retry(Reason.SETUP_SYNC_PENDING, long_wait=True),
    "INTEGRATION.SETUP_INCOMPLETE": park(Reason.INTEGRATION_SETUP, _SETUP),
    "INTEGRATION.INACTIVE": park(Reason.INTEGRATION_INACTIVE, "The integration is inactive: reactivate it."),
    "INTEGRATION.MODEL_NOT_AVAILABLE": terminal(
        Reason.NOT_SUPPORTED, "This ATS does not support applications through Kombo."
    ),
    "INTEGRATION.MODEL_DISABLED": park(Reason.INTEGRATION_SETUP, _SETUP),
    "INTEGRATION.ACTION_NOT_AVAILABLE": terminal(
        Reason.NOT_SUPPORTED, "This ATS does not support creating applications through Kombo."
    ),
    "INTEGRATION.ACTION_DISABLED": park(Reason.INTEGRATION_SETUP, _SETUP),
    # REMOTE: the ATS behind Kombo
    "REMOTE.SERVICE_UNAVAILABLE": retry(Reason.UNAVAILABLE),
    "REMOTE.RATE_LIMIT_EXCEEDED": retry(Reason.RATE_LIMITED),
    "REMOTE.INPUT_INVALID": park(Reason.INVALID_INPUT, FIX_INPUT),
    "REMOTE.UNKNOWN_HTTP_ERROR": park(Reason.REMOTE_ERROR, SUPPORT),
    # ATS: business outcomes
    "ATS.JOB_CLOSED": terminal(Reason.JOB_CLOSED, "The job is closed: tell the candidate; nothing to retry."),
    "ATS.APPLICATION_ALREADY_EXISTS": terminal(
        Reason.ALREADY_APPLIED, "The candidate already applied to this job.", reconcile=True
    ),
}


ROUTES = ProviderRoutes(
    codes=KOMBO_CODES,
    statuses=HTTP_STATUS_RULES,
    unknown_code=park(
        Reason.UNKNOWN_CODE,
        "A code applyq does not know: open the log_url, then add it to worker/routing/kombo.py.",
    ),
    transport={
        **TRANSPORT_RULES,
        # not sent: Kombo's pre-flight says the integration requires an attachment the application lacks
        ErrorKind.UNMET_REQUIREMENT: park(
            Reason.INVALID_INPUT,
            "The integration requires an attachment the application lacks (see the message): add it, e.g. "
            'applyq requeue ID --set attachments=\'[{"kind": "cv", ...}]\', or ask the customer to relax '
            "the requirement in their ATS",
        ),
    },
)
