"""Kombo: ``POST /ats/jobs/{job_id}/applications`` with Bearer auth and ``X-Integration-Id``.

After an attempt whose outcome is unknown, ``look_up`` asks ``GET /ats/candidates?email=…&job_ids=…`` whether
the candidate already has an application at the job. Kombo answers reads from its synced copy of the ATS
(docs.kombo.dev/sync: delta syncs every 3 h, full syncs every 10 h), so a hit proves the application exists,
while a miss is only as fresh as Kombo's copy: an application created by an earlier, timed-out request of
ours is in that copy once Kombo finished the request, but one made in the ATS outside Kombo may not be yet.
The ATS's duplicate check (``ATS.APPLICATION_ALREADY_EXISTS``) stays the fallback for the window.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import quote

import httpx

from worker.providers.base import (
    USER_AGENT,
    Adapter,
    Answer,
    Delivery,
    ErrorKind,
    ProviderError,
    accepted,
    bad_response,
    json_object,
    kept_headers,
    not_found,
    parse_retry_after,
    str_or_none,
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


#: Pages of candidates a lookup reads before it gives up as inconclusive (an email matches few candidates).
_LOOKUP_PAGES = 3


class KomboAdapter(Adapter):
    """Kombo's unified ATS API."""

    provider = Provider.KOMBO
    can_look_up = True

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key}",
            "X-Integration-Id": delivery.submission.integration_id or "",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    def look_up(self, delivery: Delivery) -> Answer:
        """The candidate's application at this job, if Kombo knows one (``GET /ats/candidates``, KSPEC)."""
        job_id = delivery.submission.job_id
        # a ``remote:`` job id names the ATS's own id; the ``job_ids`` filter takes Kombo ids only
        params = {"email": str(delivery.submission.candidate.email), "page_size": "100"}
        if not job_id.startswith("remote:"):
            params["job_ids"] = job_id
        cursor: str | None = None
        for _ in range(_LOOKUP_PAGES):
            page = {**params, **({"cursor": cursor} if cursor else {})}
            request = self._client.build_request("GET", "ats/candidates", params=page, headers=self._headers(delivery))
            answer, _ = self.ask(request, lambda response: self._parse_candidates(response, job_id))
            if not isinstance(answer, str):
                return answer
            cursor = answer
        return ProviderError(ErrorKind.BAD_RESPONSE, "lookup inconclusive: more candidates than it reads")

    def _parse_candidates(self, response: httpx.Response, job_id: str) -> Answer | str:
        """The application found, ``not_found``, an error, or the next page's cursor."""
        body = json_object(response)
        if response.status_code != 200:
            return self.parse(response)
        data = body.get("data") if body is not None else None
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            return bad_response(response, "HTTP 200 without Kombo's candidates page")
        for candidate in data["results"]:
            application = _application_at(candidate, job_id)
            if application is not None:
                return accepted(response, application)
        if data.get("next"):
            return str(data["next"])
        return not_found("Kombo has no application of this candidate at this job", response)

    def build_request(self, delivery: Delivery) -> httpx.Request:
        """POST the application to the job, on behalf of the integration."""
        job = quote(delivery.submission.job_id, safe=":")
        return self._client.build_request(
            "POST", f"ats/jobs/{job}/applications", json=kombo_body(delivery), headers=self._headers(delivery)
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
            code=str_or_none(error.get("code")),
            title=str_or_none(error.get("title")),
            message=str(error.get("message") or "(no message)"),
            log_url=str_or_none(error.get("log_url")),
            request_id=response.headers.get("x-request-id"),
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
            headers=kept_headers(response),
        )


def _accepted(response: httpx.Response, body: dict[str, Any] | None) -> Answer:
    data = body.get("data") if body is not None else None
    if body is None or body.get("status") != "success" or not isinstance(data, dict):
        return bad_response(response, "HTTP 200 without a Kombo success body")
    warnings = tuple(str(item.get("message")) for item in body.get("warnings") or [] if isinstance(item, dict))
    return accepted(response, data, warnings)


def _application_at(candidate: object, job_id: str) -> dict[str, Any] | None:
    """The candidate's application at ``job_id`` (a Kombo id, or ``remote:`` + the ATS's id), if any."""
    applications = candidate.get("applications") if isinstance(candidate, dict) else None
    remote = job_id.removeprefix("remote:") if job_id.startswith("remote:") else None
    for application in applications if isinstance(applications, list) else []:
        job = application.get("job") if isinstance(application, dict) else None
        if not isinstance(job, dict):
            continue
        if (remote is None and job.get("id") == job_id) or (remote is not None and job.get("remote_id") == remote):
            return cast(dict[str, Any], application)
    return None
