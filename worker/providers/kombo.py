"""Kombo: ``POST /ats/jobs/{job_id}/applications`` with Bearer auth and ``X-Integration-Id``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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
    parse_retry_after,
)
from worker.schemas import Candidate
from worker.states import Provider

__all__ = ["KomboAdapter", "kombo_body"]


def _attachment(candidate: Candidate) -> list[dict[str, Any]]:
    cv = candidate.cv
    if cv is None:
        return []
    item: dict[str, Any] = {"name": cv.name, "type": "CV", "content_type": cv.content_type}
    if cv.data is not None:
        item["data"] = cv.data
    else:
        item["data_url"] = str(cv.url)
    return [item]


def kombo_body(delivery: Delivery) -> dict[str, Any]:
    """The JSON body of Kombo's create-application request."""
    candidate = delivery.submission.candidate
    person: dict[str, Any] = {
        "first_name": candidate.first_name,
        "last_name": candidate.last_name,
        "email_address": str(candidate.email),
    }
    if candidate.phone:
        person["phone_number"] = candidate.phone
    body: dict[str, Any] = {"candidate": person}
    attachments = _attachment(candidate)
    if attachments:
        body["attachments"] = attachments
    return body


class KomboAdapter(Adapter):
    """Kombo's unified ATS API."""

    provider = Provider.KOMBO

    def build_request(self, delivery: Delivery) -> httpx.Request:
        """POST the application to the job, on behalf of the integration."""
        job = quote(delivery.submission.job_id, safe=":")
        return self._client.build_request(
            "POST",
            f"ats/jobs/{job}/applications",
            json=kombo_body(delivery),
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "X-Integration-Id": delivery.submission.integration_id or "",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
        )

    def parse(self, response: httpx.Response) -> Answer:
        """Success is HTTP 200 with ``status: success``; everything else is a ``ProviderError``."""
        body = json_object(response)
        if response.status_code == 200:
            return _accepted(response, body)
        error = body.get("error") if body is not None else None
        if not isinstance(error, dict):
            return bad_response(response, "not a Kombo error envelope")
        return ProviderError(
            kind=ErrorKind.API_ERROR,
            http_status=response.status_code,
            code=_str_or_none(error.get("code")),
            title=_str_or_none(error.get("title")),
            message=str(error.get("message") or "(no message)"),
            log_url=_str_or_none(error.get("log_url")),
            request_id=response.headers.get("x-request-id"),
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
            headers=kept_headers(response),
        )


def _accepted(response: httpx.Response, body: dict[str, Any] | None) -> Answer:
    data = body.get("data") if body is not None else None
    if body is None or body.get("status") != "success" or not isinstance(data, dict):
        return bad_response(response, "HTTP 200 without a Kombo success body")
    warnings = tuple(str(item.get("message")) for item in body.get("warnings") or [] if isinstance(item, dict))
    return Accepted(
        http_status=200,
        application_id=_str_or_none(data.get("id")),
        remote_id=_str_or_none(data.get("remote_id")),
        warnings=warnings,
        request_id=response.headers.get("x-request-id"),
        headers=kept_headers(response),
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
