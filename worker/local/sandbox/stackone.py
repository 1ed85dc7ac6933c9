"""StackOne's wire format: ``POST /unified/ats/applications``, Basic auth (API key, empty password), ``x-account-id``.

Answers follow StackOne's OpenAPI document (ATS, 2025-12-03): 201 with ``CreateResult``; errors with
``statusCode``, ``message`` and ``timestamp`` and, as StackOne's docs show on any status, ``errorCode`` and
``provider_errors[]`` (the ATS's own status and body). StackOne has no fine codes, so each scenario answers
with the status StackOne documents for it:

* ``ratelimit`` 429 + ``Retry-After``; ``remoteratelimit`` and ``concurrency`` the same, relaying the ATS's 429;
* ``unavailable``, ``hang``, ``syncpending`` 502 relaying the ATS's 503 (StackOne has no setup-sync state);
  ``nullcode`` a bare 502; ``timedout`` 408 + ``Retry-After`` after the application was created;
* ``badinput`` 400, ``closed`` 400 relaying the ATS's 422, an ``invalid.example`` email 422;
* ``permission`` 403 and ``reauth`` 401, each relaying the ATS's status; ``unknowncode`` 501;
* ``applied`` (or a second creation) 409; ``lb503x``, ``truncated``, ``empty`` as for every provider.

A request without the sandbox's key is refused 401 and one without a User-Agent 403, both without
``provider_errors`` (StackOne itself refused); a body that cannot be an application is refused 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.local.sandbox.config import SandboxConfig
from worker.local.sandbox.provider import Exchange, Reply, Submission
from worker.local.sandbox.scenarios import Behaviour, Outcome
from worker.local.sandbox.state import Application, SandboxState

__all__ = ["StackOneProvider"]

_JSON = "application/json"
_ATS_API = "https://api.ats.sandbox.example/v1"
_VALIDATION = "ValidationError"
_REQUIRED_CANDIDATE_FIELDS = ("first_name", "last_name", "email")

_NGINX_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_TRUNCATED = b'{"statusCode": 500, "message": "Internal se'


@dataclass(frozen=True)
class _Error:
    """One StackOne error: status, message, optional ``errorCode`` and the ATS's own status and message."""

    status: int
    message: str
    error_code: str | None = None
    ats_status: int | None = None
    ats_message: str = ""
    retry_after: bool = False


_ATS_UNAVAILABLE = _Error(502, "Bad gateway error.", None, 503, "Service temporarily unavailable for maintenance.")
_ERRORS: dict[Outcome, _Error] = {
    Outcome.RATE_LIMITED: _Error(429, "Too many requests.", retry_after=True),
    Outcome.CONCURRENCY_LIMITED: _Error(
        429, "Too many requests.", None, 429, "Too many concurrent requests.", retry_after=True
    ),
    Outcome.REMOTE_RATE_LIMITED: _Error(
        429, "Too many requests.", None, 429, "Too many requests to the ATS.", retry_after=True
    ),
    Outcome.UNAVAILABLE: _ATS_UNAVAILABLE,
    Outcome.SYNC_PENDING: _ATS_UNAVAILABLE,
    Outcome.NULL_CODE: _Error(502, "Bad gateway error."),
    Outcome.TIMED_OUT: _Error(408, "The request has timed out.", retry_after=True),
    Outcome.EMAIL_REJECTED: _Error(422, "Validation error.", _VALIDATION, 422, "candidate.email is not valid."),
    Outcome.JOB_CLOSED: _Error(
        400, "Invalid request.", _VALIDATION, 422, "The job is closed and no longer accepts applications."
    ),
    Outcome.ALREADY_APPLIED: _Error(409, "The resource to be created already exists."),
    Outcome.PERMISSION_MISSING: _Error(
        403, "Forbidden.", None, 403, "The API key does not have the permission to create applications."
    ),
    Outcome.REAUTH_REQUIRED: _Error(401, "Unauthorized access.", None, 401, "Invalid or expired credentials."),
    Outcome.UNKNOWN_CODE: _Error(501, "This functionality is not implemented."),
    Outcome.INPUT_INVALID: _Error(400, "Invalid request.", _VALIDATION, 400, "Invalid input parameters."),
    # StackOne relays the ATS's 404 (e.g. Greenhouse's answer when the on-behalf-of user is invalid)
    Outcome.NOT_FOUND: _Error(404, "Record not found.", None, 404, "Not found."),
}

_UNAUTHENTICATED = _Error(401, "Unauthorized access.")
_NO_USER_AGENT = _Error(403, "Forbidden: requests without a valid User-Agent header are blocked.")


class StackOneProvider:
    """StackOne's create-application endpoint, authenticated with the sandbox's API key."""

    name: str = "stackone"
    #: no documented cap on requests in flight
    concurrency_limit: int | None = None
    paths: tuple[str, ...] = ("/unified/ats/applications",)
    #: The reads a lookup uses, and the account API that names an account's ATS.
    read_paths: tuple[str, ...] = ("/unified/ats/candidates", "/unified/ats/applications/{id}", "/accounts/{id}")

    def __init__(self, config: SandboxConfig, state: SandboxState) -> None:
        self._credentials = base64.b64encode(f"{config.stackone_api_key}:".encode()).decode()
        self._retry_after_s = config.retry_after_s
        self._state = state

    def rate_scope(self, submission: Submission) -> str:
        """The API key, across its accounts: "Each API key is limited to ... 1000 requests per minute"."""
        return "api-key"

    def detects_duplicates(self, submission: Submission) -> bool:
        """Never: StackOne's create "attempts to create a new candidate" (its spec), whatever exists already."""
        return False

    def read(
        self, path: str, headers: Mapping[str, str], path_params: Mapping[str, str], query: Mapping[str, str]
    ) -> Reply:
        """The candidates by email, one application, or one linked account, as StackOne's API shapes them."""
        if not self.is_authorized(headers):
            return self._error_reply(_UNAUTHENTICATED)
        if path == "/accounts/{id}":
            return _json_reply(200, _account(path_params["id"]))
        account_id = self.integration_id(headers)
        if account_id is None:
            return self._error_reply(_Error(400, "The x-account-id header is required.", _VALIDATION))
        if path == "/unified/ats/candidates":
            email = query.get("filter[email]", "")
            found = self._state.find(self.name, account_id, email)
            return _json_reply(200, {"data": [_listed_candidate(a, email) for _, a in found]})  # no "next": one page
        held = self._state.application(self.name, path_params["id"])
        if held is None or held[0][1] != account_id:
            return self._error_reply(_Error(404, "Record not found."))
        (_, _, job_id, _), application = held
        return _json_reply(200, {"data": _application(job_id, application)})

    def job_id(self, path_params: Mapping[str, str], body: Any) -> str | None:
        """StackOne names the job in the body (``job_id``)."""
        value = body.get("job_id") if isinstance(body, dict) else None
        return value if isinstance(value, str) and value else None

    def integration_id(self, headers: Mapping[str, str]) -> str | None:
        """The ``x-account-id`` header, if it is not blank."""
        return headers.get("x-account-id", "").strip() or None

    def is_authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether ``Authorization`` is Basic with the sandbox's key as user name and an empty password."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        valid = scheme.lower() == "basic" and token.strip() == self._credentials
        return valid and not self._state.is_revoked(self.name)

    def admit(self, headers: Mapping[str, str], job_id: str, body: Any, exchange: Exchange) -> Submission | Reply:
        """Check credentials, User-Agent, account and the body, in that order."""
        if not self.is_authorized(headers):
            return self._error_reply(_UNAUTHENTICATED)
        if not headers.get("user-agent", "").strip():
            return self._error_reply(_NO_USER_AGENT)
        account_id = self.integration_id(headers)
        if account_id is None:
            return self._error_reply(_Error(400, "The x-account-id header is required.", _VALIDATION))
        problem = _body_problem(body)
        if problem is not None:
            return self._error_reply(_Error(400, f"Invalid request: {problem}", _VALIDATION))
        candidate = body["candidate"]
        return Submission(
            integration_id=account_id,
            job_id=job_id,
            first_name=candidate["first_name"],
            last_name=candidate["last_name"],
            email=candidate["email"],
            body=body,
        )

    def render(
        self,
        behaviour: Behaviour,
        submission: Submission,
        application: Application | None,
        exchange: Exchange,
    ) -> Reply:
        """StackOne's answer for the behaviour the scenario chose."""
        outcome = behaviour.outcome
        if outcome is Outcome.CREATED:
            if application is None:
                raise ValueError("a created outcome needs the created application")
            return _json_reply(201, _created_body(application))
        if outcome is Outcome.GATEWAY_HTML:
            return Reply(503, _NGINX_503, "text/html")
        if outcome is Outcome.EMPTY_BODY:
            return Reply(502)
        if outcome is Outcome.TRUNCATED_BODY:
            return Reply(500, _TRUNCATED, _JSON)
        return self._error_reply(_ERRORS[outcome], exchange)

    def _error_reply(self, error: _Error, exchange: Exchange | None = None) -> Reply:
        body: dict[str, Any] = {"statusCode": error.status, "message": error.message, "timestamp": _now()}
        if error.error_code is not None:
            body["errorCode"] = error.error_code
        if error.ats_status is not None:
            body["provider_errors"] = [_provider_error(error, exchange)]
        headers = {"Retry-After": str(self._retry_after_s)} if error.retry_after else None
        return _json_reply(error.status, body, headers)


def _body_problem(body: Any) -> str | None:
    """What makes ``body`` unusable as an application with a new candidate, or ``None``."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("job_id"), str) or not body["job_id"].strip():
        return '"job_id" is required (without a job, an ATS such as Workable files the candidate in a talent pool)'
    candidate = body.get("candidate")
    if body.get("candidate_id") is not None and candidate is not None:
        return 'provide "candidate" or "candidate_id", not both'
    if not isinstance(candidate, dict):
        return '"candidate" is required'
    for name in _REQUIRED_CANDIDATE_FIELDS:
        value = candidate.get(name)
        if not isinstance(value, str) or not value.strip():
            return f'"candidate.{name}" is required'
    if "@" not in candidate["email"]:
        return '"candidate.email" is not an email address'
    return _documents_problem(body.get("documents")) or _extras_problem(body)


#: ``AtsDocumentsUploadCategoryEnumApiModel.value`` and ``AnswerEnum.value`` (StackOne's spec), the ones a
#: sandbox client has reason to send.
_CATEGORIES = frozenset({"resume", "cover_letter", "other"})
_ANSWER_TYPES = frozenset({"short_text", "long_text", "multi_select", "single_select", "boolean", "number", "date"})


def _extras_problem(body: dict[str, Any]) -> str | None:
    """The fields of a full application as StackOne's spec types them: objects, arrays of strings, enums."""
    for path, value in (
        ("source", body.get("source")),
        ("passthrough", body.get("passthrough")),
        ("candidate.passthrough", body["candidate"].get("passthrough")),
        ("candidate.unified_custom_fields", body["candidate"].get("unified_custom_fields")),
    ):
        if value is not None and not isinstance(value, dict):
            return f'"{path}" must be an object'
    for n, document in enumerate(body.get("documents") or []):
        category = (document.get("category") or {}).get("value")
        if category is not None and category not in _CATEGORIES:
            return f'"documents[{n}].category.value" is not a document category'
    for q, questionnaire in enumerate(body.get("questionnaires") or []):
        for a, answer in enumerate(questionnaire.get("answers") or [] if isinstance(questionnaire, dict) else [None]):
            values = answer.get("values") if isinstance(answer, dict) else None
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                return f'"questionnaires[{q}].answers[{a}].values" must be an array of strings'
            kind = (answer.get("type") or {}).get("value")
            if kind is not None and kind not in _ANSWER_TYPES:
                return f'"questionnaires[{q}].answers[{a}].type.value" is not an answer type'
    return None


def _documents_problem(documents: Any) -> str | None:
    if documents is None:
        return None
    if not isinstance(documents, list):
        return '"documents" must be an array'
    for n, document in enumerate(documents):
        content = document.get("content") if isinstance(document, dict) else None
        if not isinstance(content, str) or not document.get("name"):
            return f'"documents[{n}]" needs "name" and base64 "content"'
        try:
            base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return f'"documents[{n}].content" is not base64'
    return None


def _provider_error(error: _Error, exchange: Exchange | None) -> dict[str, Any]:
    request_id = exchange.log_id if exchange is not None else ""
    return {
        "status": error.ats_status,
        "url": f"{_ATS_API}/applications",
        "raw": {"message": error.ats_message},
        "headers": {"content-type": _JSON, "x-request-id": request_id},
    }


def _created_body(application: Application) -> dict[str, Any]:
    return {
        "statusCode": 201,
        "message": "Record created successfully.",
        "timestamp": _now(),
        "data": {"id": application.id, "remote_id": application.remote_id},
    }


def _json_reply(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode(), _JSON, headers or {})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: ATS names the sandbox's account API recognises in an account id (``acc-greenhouse-1`` → Greenhouse).
KNOWN_ATS = ("greenhouse", "lever", "teamtailor", "workable", "smartrecruiters", "bamboohr", "ashby", "workday")
#: What an account id naming no known ATS is linked to: an ATS without quirks.
DEFAULT_ATS = "workable"


def account_ats(account_id: str) -> str:
    """The ATS the sandbox links an account to: the first known ATS name among the id's parts."""
    parts = account_id.lower().replace("_", "-").split("-")
    return next((part for part in parts if part in KNOWN_ATS), DEFAULT_ATS)


def _account(account_id: str) -> dict[str, Any]:
    """A ``LinkedAccount`` (``GET /accounts/{id}``)."""
    now = _now()
    return {
        "id": account_id,
        "provider": account_ats(account_id),
        "provider_name": account_ats(account_id).title(),
        "status": "active",
        "status_reasons": [],
        "origin_owner_id": f"owner-{account_id}",
        "origin_owner_name": "Sandbox customer",
        "origin_username": None,
        "label": None,
        "type": "test",
        "created_at": now,
        "updated_at": now,
    }


def _listed_candidate(application: Application, email: str) -> dict[str, Any]:
    """One candidate of ``GET /unified/ats/candidates``: a new candidate per creation (no duplicate check)."""
    return {
        "id": application.candidate_id,
        "remote_id": application.remote_id,
        "first_name": application.first_name,
        "last_name": application.last_name,
        "email": email,
        "emails": [{"type": "personal", "value": email}],
        "application_ids": [application.id],
        "remote_application_ids": [application.remote_id],
        "created_at": application.created_at.isoformat(),
    }


def _application(job_id: str, application: Application) -> dict[str, Any]:
    """One application of ``GET /unified/ats/applications/{id}``."""
    return {
        "id": application.id,
        "remote_id": application.remote_id,
        "candidate_id": application.candidate_id,
        "remote_candidate_id": application.remote_id,
        "job_id": job_id,
        "remote_job_id": job_id,
        "created_at": application.created_at.isoformat(),
    }
