"""Celper's wire format: ``POST /v1/candidates`` with ``X-API-Key`` and an optional ``Idempotency-Key``.

Celper publishes no OpenAPI document here; answers follow its documentation (``shared/reference/
idempotency_and_backoff.md`` §A): success ``{"success": true, "data", "requestId"}`` with 201, errors
``{"success": false, "error": CODE, "message", "requestId"}`` (``VALIDATION_ERROR`` adds ``details``), and on
every answer ``X-Request-Id``, ``X-API-Version`` and ``X-RateLimit-Limit/Remaining/Reset`` (Reset is a Unix
time; the 60-second window of ``SandboxConfig.celper_rate_limit`` requests is counted, never enforced).
Scenarios map to Celper's codes:

* ``ratelimit``, ``remoteratelimit``, ``concurrency`` 429 ``RATE_LIMITED`` + ``Retry-After``;
* ``unavailable``, ``hang``, ``nullcode``, ``syncpending`` and ``timedout`` (after creating) 500 ``INTERNAL_ERROR``;
* ``badinput`` and an ``invalid.example`` email 400 ``VALIDATION_ERROR``; ``closed`` 404 ``NOT_FOUND``;
* ``applied`` (or a second import) 409 ``DUPLICATE_CANDIDATE``; ``permission`` 403 ``SCOPE_INSUFFICIENT``;
  ``reauth`` 403 ``FORBIDDEN``; ``unknowncode`` 409 ``CANDIDATE_LOCKED``, a code Celper does not document.

Idempotency: the answer to a successful import is kept per key; the same key with the same body replays
it (same status and body), with another body it is 409 ``IDEMPOTENCY_CONFLICT``. Failed answers are not
kept, so a retry after a 429 or 500 runs again (Celper leaves this undocumented).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from worker.local.sandbox.config import SandboxConfig
from worker.local.sandbox.provider import Exchange, Reply, Submission
from worker.local.sandbox.scenarios import Behaviour, Outcome
from worker.local.sandbox.state import Application, SandboxState

__all__ = ["CODES", "CelperProvider"]

_WINDOW_S = 60.0
_JSON = "application/json"
#: The one company the sandbox's key belongs to (Celper's keys and limits are per company).
_COMPANY = "sandbox-company"
_MAX_KEY = 255
#: Body fields of ``POST /v1/candidates`` and their length limits (None: not a string).
_FIELDS: dict[str, int | None] = {
    "jobPositionId": 200,
    "firstName": 100,
    "lastName": 100,
    "email": 254,
    "phone": 50,
    "cvText": 100 * 1024,
    "notes": 10 * 1024,
    "skipAnalysis": None,
}
_REQUIRED = ("jobPositionId", "email")

_NGINX_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_TRUNCATED = b'{"success": false, "error": "INTERN'


@dataclass(frozen=True)
class _Error:
    """One Celper error: HTTP status, code and message."""

    status: int
    code: str
    message: str


_INTERNAL = _Error(500, "INTERNAL_ERROR", "An unexpected error occurred. Please try again later.")
_ERRORS: dict[Outcome, _Error] = {
    Outcome.RATE_LIMITED: _Error(429, "RATE_LIMITED", "Rate limit exceeded for the writes category."),
    Outcome.CONCURRENCY_LIMITED: _Error(429, "RATE_LIMITED", "Rate limit exceeded for the writes category."),
    Outcome.REMOTE_RATE_LIMITED: _Error(429, "RATE_LIMITED", "Rate limit exceeded for the writes category."),
    Outcome.UNAVAILABLE: _INTERNAL,
    Outcome.NULL_CODE: _INTERNAL,
    Outcome.SYNC_PENDING: _INTERNAL,
    Outcome.TIMED_OUT: _INTERNAL,
    Outcome.EMAIL_REJECTED: _Error(400, "VALIDATION_ERROR", "Invalid request parameters."),
    Outcome.INPUT_INVALID: _Error(400, "VALIDATION_ERROR", "Invalid request parameters."),
    Outcome.JOB_CLOSED: _Error(404, "NOT_FOUND", "Job position not found."),
    Outcome.ALREADY_APPLIED: _Error(409, "DUPLICATE_CANDIDATE", "A candidate with this email already exists."),
    Outcome.PERMISSION_MISSING: _Error(403, "SCOPE_INSUFFICIENT", "The API key lacks the write:candidates scope."),
    Outcome.REAUTH_REQUIRED: _Error(403, "FORBIDDEN", "The key's creator no longer has access."),
    Outcome.UNKNOWN_CODE: _Error(409, "CANDIDATE_LOCKED", "The candidate is locked by another operation."),
    Outcome.NOT_FOUND: _Error(404, "NOT_FOUND", "Job position not found."),
}
_UNAUTHORIZED = _Error(401, "UNAUTHORIZED", "API key is missing or invalid.")
_INVALID_BODY = _Error(400, "INVALID_BODY", "Request body is not valid JSON.")
_CONFLICT = _Error(409, "IDEMPOTENCY_CONFLICT", "Idempotency key reused with a different request body.")
_INVALID = _Error(400, "VALIDATION_ERROR", "Invalid request parameters.")

#: Every code the sandbox can answer with (``CANDIDATE_LOCKED`` stands for one Celper does not document).
CODES = frozenset(e.code for e in (*_ERRORS.values(), _UNAUTHORIZED, _INVALID_BODY, _CONFLICT))


@dataclass(frozen=True)
class _Kept:
    """A successful answer kept for its idempotency key, with the body it answered."""

    fingerprint: str
    status: int
    body: bytes


class CelperProvider:
    """Celper's candidate-import endpoint, authenticated with the sandbox's API key."""

    name: str = "celper"
    #: no documented cap on requests in flight
    concurrency_limit: int | None = None
    #: Celper's base URL ends in ``/v1``; the bare path serves clients configured without it.
    paths: tuple[str, ...] = ("/v1/candidates", "/candidates")

    def __init__(self, config: SandboxConfig, state: SandboxState) -> None:
        self._api_key = config.celper_api_key
        self._retry_after_s = config.retry_after_s
        self._rate_limit = config.celper_rate_limit
        self._state = state
        self._window: deque[float] = deque()
        self._lock = threading.Lock()

    #: No lookup: Celper's Idempotency-Key replays an earlier answer instead.
    read_paths: tuple[str, ...] = ()

    def rate_scope(self, submission: Submission) -> str:
        """The company ("per-company rate limits")."""
        return submission.integration_id

    def detects_duplicates(self, submission: Submission) -> bool:
        """Celper refuses a second candidate with the same email in a job position (``DUPLICATE_CANDIDATE``)."""
        return True

    def read(
        self, path: str, headers: Mapping[str, str], path_params: Mapping[str, str], query: Mapping[str, str]
    ) -> Reply:
        """Celper has no read endpoint in the sandbox."""
        raise LookupError(path)

    def job_id(self, path_params: Mapping[str, str], body: Any) -> str | None:
        """Celper names the job position in the body (``jobPositionId``)."""
        value = body.get("jobPositionId") if isinstance(body, dict) else None
        return value if isinstance(value, str) and value else None

    def integration_id(self, headers: Mapping[str, str]) -> str | None:
        """Celper has no integrations: every request acts for the key's company."""
        return None

    def is_authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether ``X-API-Key`` is the sandbox's key."""
        valid = headers.get("x-api-key", "").strip() == self._api_key
        return valid and not self._state.is_revoked(self.name)

    def admit(self, headers: Mapping[str, str], job_id: str, body: Any, exchange: Exchange) -> Submission | Reply:
        """Check the key, the body and the idempotency key; replay a kept answer."""
        if not self.is_authorized(headers):
            return self._error_reply(_UNAUTHORIZED, exchange)
        if body is None:
            return self._error_reply(_INVALID_BODY, exchange)
        key = headers.get("idempotency-key")
        problems = _problems(body) + _key_problems(key)
        if problems:
            return self._error_reply(_INVALID, exchange, problems)
        if key is not None:
            kept = self._state.recall(self.name, key)
            if isinstance(kept, _Kept):
                if kept.fingerprint != _fingerprint(body):
                    return self._error_reply(_CONFLICT, exchange)
                return Reply(kept.status, kept.body, _JSON, self._headers(exchange))
        return Submission(
            integration_id=_COMPANY,
            job_id=job_id,
            first_name=str(body.get("firstName", "")),
            last_name=str(body.get("lastName", "")),
            email=body["email"],
            body=body,
            idempotency_key=key,
        )

    def render(
        self,
        behaviour: Behaviour,
        submission: Submission,
        application: Application | None,
        exchange: Exchange,
    ) -> Reply:
        """Celper's answer for the behaviour the scenario chose."""
        outcome = behaviour.outcome
        if outcome is Outcome.CREATED:
            if application is None:
                raise ValueError("a created outcome needs the created application")
            return self._created(submission, application, exchange)
        if outcome is Outcome.GATEWAY_HTML:
            return Reply(503, _NGINX_503, "text/html")
        if outcome is Outcome.EMPTY_BODY:
            return Reply(502)
        if outcome is Outcome.TRUNCATED_BODY:
            return Reply(500, _TRUNCATED, _JSON, self._headers(exchange))
        details = None
        if outcome is Outcome.EMAIL_REJECTED:
            details = [{"field": "email", "message": f"{submission.email} is not a deliverable address"}]
        elif outcome is Outcome.INPUT_INVALID:
            details = [{"field": "jobPositionId", "message": "does not accept candidates through the API"}]
        return self._error_reply(_ERRORS[outcome], exchange, details)

    def _created(self, submission: Submission, application: Application, exchange: Exchange) -> Reply:
        body = json.dumps({"success": True, "data": _candidate(submission, application), "requestId": exchange.log_id})
        reply = Reply(201, body.encode(), _JSON, self._headers(exchange))
        if submission.idempotency_key is not None:
            kept = _Kept(_fingerprint(submission.body), reply.status, reply.body)
            self._state.remember(self.name, submission.idempotency_key, kept)
        return reply

    def _error_reply(self, error: _Error, exchange: Exchange, details: list[dict[str, str]] | None = None) -> Reply:
        body: dict[str, Any] = {
            "success": False,
            "error": error.code,
            "message": error.message,
            "requestId": exchange.log_id,
        }
        if details:
            body["details"] = details
        headers = self._headers(exchange)
        if error.code == "RATE_LIMITED":
            headers["Retry-After"] = str(self._retry_after_s)
        return Reply(error.status, json.dumps(body).encode(), _JSON, headers)

    def _headers(self, exchange: Exchange) -> dict[str, str]:
        """Celper's standard headers; the rate-limit window counts this request."""
        now = time.time()
        with self._lock:
            self._window.append(now)
            while self._window and self._window[0] <= now - _WINDOW_S:
                self._window.popleft()
            used, oldest = len(self._window), self._window[0]
        return {
            "X-Request-Id": exchange.log_id,
            "X-API-Version": "v1",
            "X-RateLimit-Limit": str(self._rate_limit),
            "X-RateLimit-Remaining": str(max(0, self._rate_limit - used)),
            "X-RateLimit-Reset": str(int(oldest + _WINDOW_S) + 1),
        }


def _problems(body: Any) -> list[dict[str, str]]:
    """Field errors of an import body, in Celper's ``details`` form."""
    if not isinstance(body, dict):
        return [{"field": "body", "message": "must be a JSON object"}]
    problems = [{"field": name, "message": "is required"} for name in _REQUIRED if not body.get(name)]
    for name, value in body.items():
        if name not in _FIELDS:
            problems.append({"field": name, "message": "is not a known field"})
        elif _FIELDS[name] is None:
            if not isinstance(value, bool):
                problems.append({"field": name, "message": "must be a boolean"})
        elif not isinstance(value, str) or not 1 <= len(value) <= (_FIELDS[name] or 0):
            problems.append({"field": name, "message": f"must be a string of 1 to {_FIELDS[name]} characters"})
    if isinstance(body.get("email"), str) and "@" not in body["email"]:
        problems.append({"field": "email", "message": "is not an email address"})
    return problems


def _key_problems(key: str | None) -> list[dict[str, str]]:
    if key is None or 0 < len(key.strip()) <= _MAX_KEY:
        return []
    return [{"field": "Idempotency-Key", "message": f"must be 1 to {_MAX_KEY} characters"}]


def _fingerprint(body: Any) -> str:
    """The body, canonically: the same JSON sent with other spacing or key order is the same body."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _candidate(submission: Submission, application: Application) -> dict[str, Any]:
    body = submission.body
    return {
        "id": application.candidate_id,
        "jobPositionId": submission.job_id,
        "firstName": body.get("firstName"),
        "lastName": body.get("lastName"),
        "email": submission.email,
        "phone": body.get("phone"),
        "status": "new",
        "importSource": "api",
        "createdAt": application.created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
