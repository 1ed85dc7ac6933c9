"""Kombo's wire format: ``POST /ats/jobs/{job_id}/applications`` with Bearer auth and ``X-Integration-Id``.

Answers follow Kombo's OpenAPI document: HTTP 200 with ``{"status": "success", "data", "warnings"}``,
anything else with the ``{"status": "error", "error": {code, title, message, log_url}}`` envelope,
except the load balancer's HTML and empty answers and the deliberately truncated body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.local.sandbox import kombo_fields
from worker.local.sandbox.config import SandboxConfig
from worker.local.sandbox.provider import Exchange, Reply, Submission
from worker.local.sandbox.scenarios import Behaviour, Outcome
from worker.local.sandbox.state import Application, SandboxState

__all__ = ["CONCURRENCY_LIMIT", "NO_DUPLICATE_CHECK", "KomboProvider"]

#: Integrations whose id starts with this stand for an ATS without a duplicate check: a second POST of the same
#: candidate to the same job creates a second application (Kombo: not every ATS detects duplicates).
NO_DUPLICATE_CHECK = "nodupe:"

#: Action requests Kombo lets run at once per integration (its documented default).
CONCURRENCY_LIMIT = 30

_JSON = "application/json"
_INPUT_INVALID_TITLE = "The input you provided is invalid."
_REMOTE_INVALID_TITLE = "The remote system returned errors."
_REQUIRED_CANDIDATE_FIELDS = ("first_name", "last_name", "email_address")
_DEFAULT_STAGE_ID = "5J7L4b48wBfffYwek9Az9pkM"
_ATS_URL = "https://ats.sandbox.example"

_NGINX_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_TRUNCATED = b'{"status": "error", "error": {"code": "PLAT'


@dataclass(frozen=True)
class _Error:
    """One Kombo error: HTTP status, code, title and a message template over the submission ``s``."""

    status: int
    code: str | None
    title: str | None
    message: str


_ERRORS: dict[Outcome, _Error] = {
    Outcome.RATE_LIMITED: _Error(
        429,
        "PLATFORM.RATE_LIMIT_EXCEEDED",
        "You have hit Kombo's rate limit. Please try again later.",
        "Too many requests for integration {s.integration_id}. Please slow down and retry later.",
    ),
    # Kombo lists REMOTE.RATE_LIMIT_EXCEEDED as "safe to retry" (error FAQ, reference/kombo.md §2) but names no
    # status for it: 429 is our reading, as for Kombo's own limit
    Outcome.REMOTE_RATE_LIMITED: _Error(
        429,
        "REMOTE.RATE_LIMIT_EXCEEDED",
        "The remote system's rate limit was hit.",
        'The API of "Sandbox ATS" rate limited the request for integration {s.integration_id}. Please try again later.',
    ),
    Outcome.CONCURRENCY_LIMITED: _Error(
        429,
        "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED",
        "Too many action requests are in flight for this integration.",
        f"More than {CONCURRENCY_LIMIT} action requests are in flight for integration {{s.integration_id}}."
        " Retry with exponential backoff.",
    ),
    Outcome.UNAVAILABLE: _Error(
        503,
        "REMOTE.SERVICE_UNAVAILABLE",
        "The remote system is currently unavailable.",
        'The API of "Sandbox ATS" is currently unavailable. Please try again later.',
    ),
    Outcome.NULL_CODE: _Error(503, None, None, "The remote system did not answer. Please try again later."),
    Outcome.TIMED_OUT: _Error(
        500,
        "PLATFORM.TASK_TIMED_OUT",
        "The task timed out.",
        "Creating the application for job {s.job_id} took too long. It may still complete in the background.",
    ),
    Outcome.SYNC_PENDING: _Error(
        409,
        "INTEGRATION.SETUP_SYNC_PENDING",
        "The integration's setup sync is still running.",
        "The initial sync of integration {s.integration_id} has not finished yet; requests are blocked until"
        " it completes.",
    ),
    Outcome.EMAIL_REJECTED: _Error(
        400,
        "REMOTE.INPUT_INVALID",
        "The remote system returned errors.",
        'Sandbox ATS rejected the candidate: field "candidate.email_address" ("{s.email}") is not a valid'
        " email address.",
    ),
    Outcome.JOB_CLOSED: _Error(
        400,
        "ATS.JOB_CLOSED",
        "The requested job is closed.",
        "The job {s.job_id} is closed and no longer accepts applications.",
    ),
    Outcome.ALREADY_APPLIED: _Error(
        400,
        "ATS.APPLICATION_ALREADY_EXISTS",
        "The candidate has already applied to this job.",
        "{s.first_name} {s.last_name} ({s.email}) has an existing application for the job {s.job_id}.",
    ),
    Outcome.PERMISSION_MISSING: _Error(
        403,
        "INTEGRATION.PERMISSION_MISSING",
        "The integration is missing a required permission.",
        'Integration {s.integration_id} lacks the permission "Create applications and candidates".',
    ),
    Outcome.REAUTH_REQUIRED: _Error(
        401,
        "INTEGRATION.AUTHENTICATION_INVALID",
        "The credentials of the integration are invalid.",
        "Sandbox ATS rejected the stored credentials of integration {s.integration_id}. Please reconnect it.",
    ),
    Outcome.UNKNOWN_CODE: _Error(
        400,
        "ATS.SOMETHING_NEW",
        "The ATS reported a problem Kombo has no code for yet.",
        "Sandbox ATS refused the application for the job {s.job_id} for a reason without a known code.",
    ),
    Outcome.INPUT_INVALID: _Error(
        400,
        "PLATFORM.INPUT_INVALID",
        _INPUT_INVALID_TITLE,
        'Invalid request body: "candidate" does not match what integration {s.integration_id} accepts.',
    ),
    # Kombo's spec lists no job-not-found code; an unknown job id is invalid input (our reading).
    Outcome.NOT_FOUND: _Error(
        400,
        "PLATFORM.INPUT_INVALID",
        _INPUT_INVALID_TITLE,
        "The job {s.job_id} does not exist in integration {s.integration_id}.",
    ),
}

_UNAUTHENTICATED = _Error(
    401,
    "PLATFORM.AUTHENTICATION_INVALID",
    "The provided API key is invalid.",
    'Send a valid API key as "Authorization: Bearer <key>".',
)
_NO_INTEGRATION = _Error(
    404,
    "PLATFORM.INTEGRATION_NOT_FOUND",
    "The integration could not be found.",
    'Send the id of an integration in the "X-Integration-Id" header.',
)


class KomboProvider:
    """Kombo's create-application endpoint, authenticated with the sandbox's API key."""

    name: str = "kombo"
    #: Enforced since 2026-03-20: "when more than 30 action requests are in flight simultaneously for a single
    #: integration, additional requests are rejected with HTTP 429 and the error code
    #: PLATFORM.CONCURRENCY_LIMIT_EXCEEDED" (docs.kombo.dev/ats/important-changes; the concurrency-limiting
    #: guide: "immediately rejected"). Reads of synced data are not actions (``read``: no cap).
    concurrency_limit: int | None = CONCURRENCY_LIMIT
    #: Kombo's base URL ends in ``/v1``; the bare path serves clients configured without it.
    paths: tuple[str, ...] = ("/v1/ats/jobs/{job_id}/applications", "/ats/jobs/{job_id}/applications")

    #: Kombo's read endpoints: the candidates a lookup reads (synced data; here, whatever the sandbox holds) and
    #: the create-application pre-flight (KSPEC ``GET /ats/actions/ats_create_application``).
    read_paths: tuple[str, ...] = (
        "/v1/ats/candidates",
        "/ats/candidates",
        "/v1/ats/actions/ats_create_application",
        "/ats/actions/ats_create_application",
    )

    def __init__(self, config: SandboxConfig, state: SandboxState) -> None:
        self._api_key = config.kombo_api_key
        self._retry_after_s = config.retry_after_s
        self._state = state

    def rate_scope(self, submission: Submission) -> str:
        """The integration (the sandbox's stand-in for Kombo's unpublished rate-limit scope)."""
        return submission.integration_id

    def detects_duplicates(self, submission: Submission) -> bool:
        """Whether the ATS refuses a second application: not every ATS behind Kombo does (``nodupe:`` ids)."""
        return not submission.integration_id.startswith(NO_DUPLICATE_CHECK)

    def read(
        self, path: str, headers: Mapping[str, str], path_params: Mapping[str, str], query: Mapping[str, str]
    ) -> Reply:
        """``GET /ats/candidates`` filtered by ``email`` (and ``job_ids``), or the pre-flight, as KSPEC shapes them."""
        exchange = Exchange("", 0)
        if not self.is_authorized(headers):
            return _error_reply(_UNAUTHENTICATED, exchange)
        integration_id = self.integration_id(headers)
        if integration_id is None:
            return _error_reply(_NO_INTEGRATION, exchange)
        if path.endswith("/ats_create_application"):
            body = kombo_fields.preflight_body(self._state.restrictions(integration_id))
            return Reply(200, json.dumps(body).encode(), _JSON)
        email = query.get("email", "")
        jobs = {job for job in query.get("job_ids", "").split(",") if job}
        found = [(job, a) for job, a in self._state.find(self.name, integration_id, email) if not jobs or job in jobs]
        by_candidate: dict[str, list[tuple[str, Application]]] = {}
        for job, application in found:
            by_candidate.setdefault(application.candidate_id, []).append((job, application))
        results = [_listed_candidate(email, held) for held in by_candidate.values()]
        body = {"status": "success", "data": {"next": None, "results": results}}
        return Reply(200, json.dumps(body).encode(), _JSON)  # reads hold no action slot: no Concurrency-* headers

    def job_id(self, path_params: Mapping[str, str], body: Any) -> str | None:
        """Kombo names the job in the path."""
        return path_params.get("job_id")

    def integration_id(self, headers: Mapping[str, str]) -> str | None:
        """The ``X-Integration-Id`` header, if it is not blank."""
        return headers.get("x-integration-id", "").strip() or None

    def is_authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether ``Authorization`` is ``Bearer <the sandbox's Kombo key>``."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        valid = scheme.lower() == "bearer" and token.strip() == self._api_key
        return valid and not self._state.is_revoked(self.name)

    def admit(self, headers: Mapping[str, str], job_id: str, body: Any, exchange: Exchange) -> Submission | Reply:
        """Check credentials, integration and the candidate's required fields, in Kombo's order."""
        if not self.is_authorized(headers):
            return _error_reply(_UNAUTHENTICATED, exchange)
        integration_id = self.integration_id(headers)
        if integration_id is None:
            return _error_reply(_NO_INTEGRATION, exchange)
        candidate = _candidate(body)
        if isinstance(candidate, str):
            invalid = _Error(400, "PLATFORM.INPUT_INVALID", _INPUT_INVALID_TITLE, candidate)
            return _error_reply(invalid, exchange)
        problem = kombo_fields.body_problem(body)
        if problem is not None:
            return _error_reply(_Error(400, "PLATFORM.INPUT_INVALID", _INPUT_INVALID_TITLE, problem), exchange)
        refused = kombo_fields.restriction_problem(body, self._state.restrictions(integration_id))
        if refused is not None:
            return _error_reply(_Error(400, "REMOTE.INPUT_INVALID", _REMOTE_INVALID_TITLE, refused), exchange)
        return Submission(
            integration_id=integration_id,
            job_id=job_id,
            first_name=candidate["first_name"],
            last_name=candidate["last_name"],
            email=candidate["email_address"],
            body=body,
        )

    def render(
        self,
        behaviour: Behaviour,
        submission: Submission,
        application: Application | None,
        exchange: Exchange,
    ) -> Reply:
        """Kombo's answer for the behaviour the scenario chose."""
        outcome = behaviour.outcome
        if outcome is Outcome.CREATED:
            if application is None:
                raise ValueError("a created outcome needs the created application")
            return _json_reply(200, _success_body(submission, application), exchange)
        if outcome is Outcome.GATEWAY_HTML:
            return Reply(503, _NGINX_503, headers={"Content-Type": "text/html"})
        if outcome is Outcome.EMPTY_BODY:
            return Reply(502)
        if outcome is Outcome.TRUNCATED_BODY:
            return Reply(500, _TRUNCATED, _JSON, _concurrency_headers(exchange))
        extra: dict[str, str] = {}
        if outcome in (Outcome.RATE_LIMITED, Outcome.REMOTE_RATE_LIMITED):
            extra["Retry-After"] = str(self._retry_after_s)
        if outcome is Outcome.CONCURRENCY_LIMITED:
            extra["Concurrency-Remaining"] = "0"
        return _error_reply(_ERRORS[outcome], exchange, submission, extra)


def _candidate(body: Any) -> dict[str, Any] | str:
    """The request's candidate object, or what is wrong with it."""
    candidate = body.get("candidate") if isinstance(body, dict) else None
    if not isinstance(candidate, dict):
        return 'Invalid request body: "candidate" is required and must be an object.'
    for name in _REQUIRED_CANDIDATE_FIELDS:
        value = candidate.get(name)
        if not isinstance(value, str) or not value.strip():
            return f'Invalid request body: "candidate.{name}" is required.'
    if "@" not in candidate["email_address"]:
        return 'Invalid request body: "candidate.email_address" must be an email address.'
    return candidate


def _concurrency_headers(exchange: Exchange) -> dict[str, str]:
    remaining = max(0, CONCURRENCY_LIMIT - exchange.in_flight)
    return {"Concurrency-Limit": str(CONCURRENCY_LIMIT), "Concurrency-Remaining": str(remaining)}


def _json_reply(
    status: int, body: Mapping[str, Any], exchange: Exchange, extra: Mapping[str, str] | None = None
) -> Reply:
    headers = {**_concurrency_headers(exchange), **(extra or {})}
    return Reply(status, json.dumps(body).encode(), _JSON, headers)


def _error_reply(
    error: _Error,
    exchange: Exchange,
    submission: Submission | None = None,
    extra: Mapping[str, str] | None = None,
) -> Reply:
    # Kombo's minimal error (no code) carries no log link either.
    body = {
        "status": "error",
        "error": {
            "code": error.code,
            "title": error.title,
            "message": error.message.format(s=submission),
            "log_url": None if error.code is None else exchange.log_url,
        },
    }
    return _json_reply(error.status, body, exchange, extra)


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _success_body(submission: Submission, application: Application) -> dict[str, Any]:
    created = _timestamp(application.created_at)
    stage_id = _text(submission.body, "stage_id")
    return {
        "status": "success",
        "data": {
            "id": application.id,
            "remote_id": application.remote_id,
            "outcome": "PENDING",
            "rejection_reason_name": None,
            "rejected_at": None,
            "current_stage_id": stage_id or _DEFAULT_STAGE_ID,
            "job_id": submission.job_id,
            "candidate_id": application.candidate_id,
            "screening_question_answers": [],
            "custom_fields": {},
            "integration_fields": [],
            "remote_url": f"{_ATS_URL}/applications/{application.remote_id}",
            "changed_at": created,
            "remote_deleted_at": None,
            "remote_created_at": created,
            "remote_updated_at": created,
            "remote_data": None,
            "current_stage": {
                "id": stage_id or _DEFAULT_STAGE_ID,
                "name": None if stage_id else "Applied",
                "remote_id": None if stage_id else "1",
                "index": None if stage_id else 0,
            },
            "job": {
                "id": submission.job_id,
                "name": f"Sandbox job {submission.job_id}",
                "remote_id": submission.job_id.removeprefix("remote:"),
            },
            "candidate": _candidate_body(submission, application, created),
        },
        "warnings": [{"message": "Sandbox: no real ATS was contacted; the application is held in memory."}],
    }


def _candidate_body(submission: Submission, application: Application, created: str) -> dict[str, Any]:
    given = submission.body["candidate"]
    phone = _text(given, "phone_number")
    return {
        "id": application.candidate_id,
        "remote_id": application.remote_id,
        "first_name": submission.first_name,
        "last_name": submission.last_name,
        "company": _text(given, "company"),
        "title": _text(given, "title"),
        "confidential": False,
        "source": "applyq sandbox",
        "phone_numbers": [{"phone_number": phone, "type": "OTHER"}] if phone else [],
        "email_addresses": [{"email_address": submission.email, "type": "PERSONAL"}],
        "social_media": [],
        "location": None,
        "custom_fields": {},
        "integration_fields": [],
        "remote_url": f"{_ATS_URL}/candidates/{application.remote_id}",
        "remote_created_at": created,
        "remote_updated_at": created,
        "remote_data": None,
        "changed_at": created,
        "remote_deleted_at": None,
        "tags": [],
    }


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    """The field if the client sent a non-empty string, else ``None``."""
    value = fields.get(name)
    return value if isinstance(value, str) and value else None


def _listed_candidate(email: str, held: list[tuple[str, Application]]) -> dict[str, Any]:
    """One candidate of ``GET /ats/candidates`` with its applications (``GetAtsCandidatesPositiveResponse``)."""
    first = held[0][1]
    created = _timestamp(first.created_at)
    return {
        "id": first.candidate_id,
        "remote_id": first.remote_id,
        "first_name": first.first_name,
        "last_name": first.last_name,
        "company": None,
        "title": None,
        "confidential": False,
        "source": "applyq sandbox",
        "phone_numbers": [],
        "email_addresses": [{"email_address": email, "type": "PERSONAL"}],
        "social_media": [],
        "location": None,
        "custom_fields": {},
        "integration_fields": [],
        "remote_url": f"{_ATS_URL}/candidates/{first.remote_id}",
        "remote_created_at": created,
        "remote_updated_at": created,
        "remote_data": None,
        "changed_at": created,
        "remote_deleted_at": None,
        "applications": [_listed_application(job, application) for job, application in held],
        "tags": [],
    }


def _listed_application(job_id: str, application: Application) -> dict[str, Any]:
    created = _timestamp(application.created_at)
    return {
        "id": application.id,
        "remote_id": application.remote_id,
        "outcome": "PENDING",
        "rejection_reason_name": None,
        "rejected_at": None,
        "remote_url": f"{_ATS_URL}/applications/{application.remote_id}",
        "changed_at": created,
        "remote_created_at": created,
        "remote_updated_at": created,
        "current_stage": {"id": _DEFAULT_STAGE_ID, "name": "Applied", "remote_id": "1", "index": 0},
        "job": {"id": job_id, "name": f"Sandbox job {job_id}", "remote_id": job_id.removeprefix("remote:")},
    }
