"""Celper: ``POST /v1/candidates`` with ``X-API-Key`` and a per-submission ``Idempotency-Key``.

The key is the submission's ``provider_idempotency_key``: every attempt of one payload (after a retry, a
lost worker or a restart) sends the same one, and Celper replays the original answer instead of importing
the candidate twice; an operator's edit of the payload gets a new key (``db.submissions``). Errors are flat
``{"success": false, "error": CODE, "message", "requestId"}`` and are routed on ``error``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from worker.providers.base import (
    USER_AGENT,
    Accepted,
    Adapter,
    Answer,
    Delivery,
    ErrorKind,
    ProviderError,
    bad_response,
    json_object,
    kept_headers,
    retry_after_of,
)
from worker.schemas import Attachment
from worker.states import Provider

__all__ = ["CelperAdapter", "celper_body", "cv_text"]


def cv_text(cv: Attachment | None) -> str | None:
    """The CV as text for ``cvText``: only a ``text/*`` CV given as data has one."""
    if cv is None or cv.data is None or not cv.content_type.lower().startswith("text/"):
        return None
    return base64.b64decode(cv.data).decode("utf-8")


def celper_body(delivery: Delivery) -> dict[str, Any]:
    """The JSON body of Celper's candidate import."""
    submission = delivery.submission
    candidate = submission.candidate
    body: dict[str, Any] = {
        "jobPositionId": submission.job_id,
        "firstName": candidate.first_name,
        "lastName": candidate.last_name,
        "email": str(candidate.email),
    }
    if candidate.phone:
        body["phone"] = candidate.phone
    text = cv_text(candidate.cv)
    if text is not None:
        body["cvText"] = text
    own = submission.provider_fields.celper if submission.provider_fields else None
    if own is not None:
        # ``notes`` (≤ 10 KB) and ``skipAnalysis`` (default false), Celper's names (docs.celper.ai/endpoints/candidates)
        body.update(own.model_dump(exclude_none=True))
    return body


class CelperAdapter(Adapter):
    """Celper's candidate-import API."""

    provider = Provider.CELPER

    def build_request(self, delivery: Delivery) -> httpx.Request:
        """POST the candidate to the job position, with the submission's idempotency key."""
        return self._client.build_request(
            "POST",
            "candidates",
            json=celper_body(delivery),
            headers={
                "X-API-Key": self._api_key,
                "Idempotency-Key": delivery.idempotency_key,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
        )

    def parse(self, response: httpx.Response) -> Answer:
        """Success is 2xx with ``success: true``; an error is ``success: false`` with an ``error`` code."""
        body = json_object(response)
        if 200 <= response.status_code < 300:
            return _accepted(response, body)
        if body is None or body.get("success") is not False or not isinstance(body.get("error"), str):
            return bad_response(response, "not a Celper error body")
        field_errors = body.get("details")
        return ProviderError(
            kind=ErrorKind.API_ERROR,
            http_status=response.status_code,
            code=body["error"],
            message=str(body.get("message") or "(no message)"),
            request_id=_request_id(response, body),
            retry_after_s=retry_after_of(response),
            details={"details": field_errors} if field_errors else None,
            headers=kept_headers(response),
        )


def _accepted(response: httpx.Response, body: dict[str, Any] | None) -> Answer:
    data = body.get("data") if body is not None else None
    if body is None or body.get("success") is not True or not isinstance(data, dict):
        return bad_response(response, f"HTTP {response.status_code} without a Celper success body")
    # Celper's list and read endpoints name the candidate ``data.id``; its quickstart reads the create answer
    # as ``{ candidateId, status, ... }`` (CelperAI/skills references/quickstart.md). Either is accepted.
    candidate_id = data.get("id") or data.get("candidateId")
    return Accepted(
        http_status=response.status_code,
        application_id=None if candidate_id is None else str(candidate_id),
        remote_id=None if candidate_id is None else str(candidate_id),
        request_id=_request_id(response, body),
        headers=kept_headers(response),
    )


def _request_id(response: httpx.Response, body: dict[str, Any]) -> str | None:
    request_id = body.get("requestId")
    return str(request_id) if request_id else response.headers.get("x-request-id")
