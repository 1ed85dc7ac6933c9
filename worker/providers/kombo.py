"""Kombo: ``POST /ats/jobs/{job_id}/applications`` with Bearer auth and ``X-Integration-Id``.

After an attempt whose outcome is unknown, ``look_up`` asks ``GET /ats/candidates?email=…&job_ids=…`` whether
the candidate already has an application at the job. Kombo answers reads from its synced copy of the ATS
(docs.kombo.dev/sync: delta syncs every 3 h, full syncs every 10 h), so a hit proves the application exists,
while a miss is only as fresh as Kombo's copy: an application created by an earlier, timed-out request of
ours is in that copy once Kombo finished the request, but one made in the ATS outside Kombo may not be yet.
The ATS's duplicate check (``ATS.APPLICATION_ALREADY_EXISTS``) stays the fallback for the window.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import httpx

from worker.providers import kombo_preflight as preflight
from worker.providers.base import (
    USER_AGENT,
    Accepted,
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
    retry_after_of,
    str_or_none,
)
from worker.schemas import Attachment, AttachmentKind, Candidate
from worker.states import Provider

__all__ = ["KomboAdapter", "kombo_body"]


#: Kombo's attachment ``type`` for each kind of file (KSPEC ``attachments[].type``).
_ATTACHMENT_TYPES = {
    AttachmentKind.CV: "CV",
    AttachmentKind.COVER_LETTER: "COVER_LETTER",
    AttachmentKind.OTHER: "OTHER",
}


def _attachment(kind: AttachmentKind, file: Attachment) -> dict[str, Any]:
    """One of KSPEC's ``attachments[]``; ``content_type`` without parameters (KSPEC's pattern allows none)."""
    content_type = file.content_type.split(";")[0].strip()
    item: dict[str, Any] = {"name": file.name, "type": _ATTACHMENT_TYPES[kind], "content_type": content_type}
    if file.data is not None:
        item["data"] = file.data
    else:
        item["data_url"] = str(file.url)
    return item


def _person(candidate: Candidate) -> dict[str, Any]:
    """KSPEC's ``candidate``: the three required fields, then whatever the submission has."""
    person: dict[str, Any] = {
        "first_name": candidate.first_name,
        "last_name": candidate.last_name,
        "email_address": str(candidate.email),
    }
    optional = {"phone_number": candidate.phone, "company": candidate.company, "title": candidate.title}
    person.update({name: value for name, value in optional.items() if value})
    if candidate.location is not None:
        where = candidate.location
        fields = {"city": where.city, "state": where.state, "street_1": where.street, "zip_code": where.zip_code}
        person["location"] = {"country": where.country, **{k: v for k, v in fields.items() if v}}
    if candidate.links:
        person["social_links"] = [{"url": str(link.url)} for link in candidate.links]
    return person


def _timestamp(moment: datetime) -> str:
    """A time as KSPEC's date-time pattern takes it: UTC, seconds, ``Z`` (no offset allowed)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kombo_body(delivery: Delivery) -> dict[str, Any]:
    """The JSON body of Kombo's create-application request (KSPEC ``PostAtsJobsJobIdApplicationsRequestBody``)."""
    submission = delivery.submission
    body: dict[str, Any] = {"candidate": _person(submission.candidate)}
    attachments = [_attachment(kind, file) for kind, file in submission.files()]
    if attachments:
        body["attachments"] = attachments  # "the first CV in the attachments will be treated as the resume"
    if submission.screening_answers:
        body["screening_question_answers"] = [
            {"question_id": a.question_id, "answer": a.answer} for a in submission.screening_answers
        ]
    if submission.consent is not None:
        consent: dict[str, Any] = {"given": submission.consent.given}
        if submission.consent.expires_at is not None:
            consent["expires_at"] = _timestamp(submission.consent.expires_at)
        body["gdpr_consent"] = consent
    if submission.source is not None:
        # deprecated by Kombo in favour of its automatic source writing (KSPEC), still accepted
        body["source"] = submission.source.model_dump(exclude_none=True)
    own = submission.provider_fields.kombo if submission.provider_fields else None
    if own is not None:
        body.update(own.model_dump(exclude_none=True, exclude_defaults=True))
    return body


#: Pages of candidates a lookup reads before it gives up as inconclusive (an email matches few candidates).
_LOOKUP_PAGES = 3


#: Answers after which the cached pre-flight is read again: the integration refused what it was sent.
_STALE_PREFLIGHT_CODES = frozenset({"PLATFORM.INPUT_INVALID", "REMOTE.INPUT_INVALID"})


class KomboAdapter(Adapter):
    """Kombo's unified ATS API."""

    provider = Provider.KOMBO
    can_look_up = True

    def __init__(self, client: httpx.Client, api_key: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(client, api_key)
        self._preflight = preflight.PreflightCache(clock=clock)

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
        return self._post(delivery, kombo_body(delivery))

    def _post(self, delivery: Delivery, body: dict[str, Any]) -> httpx.Request:
        job = quote(delivery.submission.job_id, safe=":")
        return self._client.build_request(
            "POST", f"ats/jobs/{job}/applications", json=body, headers=self._headers(delivery)
        )

    def deliver(self, delivery: Delivery) -> tuple[Answer, float]:
        """Read the integration's pre-flight (cached), fit the attachments to it, then send.

        What the integration cannot take is left out with a warning on the attempt; when a type it requires is
        then missing, nothing is sent and the answer is ``UNMET_REQUIREMENT`` (parked). A pre-flight that cannot
        be read is no reason to hold the application back: it is sent as it is, with a warning.
        """
        started = time.perf_counter()
        integration_id = delivery.submission.integration_id or ""
        body = kombo_body(delivery)
        restrictions, warnings = self._restrictions(delivery)
        fitted = preflight.fit(body.get("attachments", []), restrictions)
        warnings += fitted.warnings
        if fitted.unmet is not None:
            unmet = ProviderError(ErrorKind.UNMET_REQUIREMENT, fitted.unmet, details={"warnings": list(warnings)})
            return unmet, (time.perf_counter() - started) * 1000
        body.pop("attachments", None)
        if fitted.attachments:
            body["attachments"] = fitted.attachments
        answer, _ = self.ask(self._post(delivery, body), self.parse)
        if isinstance(answer, ProviderError) and answer.code in _STALE_PREFLIGHT_CODES:
            self._preflight.forget(integration_id)
        return _with_warnings(answer, warnings), (time.perf_counter() - started) * 1000

    def _restrictions(self, delivery: Delivery) -> tuple[preflight.Restrictions, tuple[str, ...]]:
        """The integration's attachment restrictions (cached), and a warning if they could not be read (a failed
        read is cached too, for a minute: ``PREFLIGHT_FAILED_TTL_S``)."""
        integration_id = delivery.submission.integration_id or ""
        cached = self._preflight.get(integration_id)
        if cached is not None:
            return cached
        timeout = min(preflight.PREFLIGHT_TIMEOUT_S, self._client.timeout.read or preflight.PREFLIGHT_TIMEOUT_S)
        headers = self._headers(delivery)
        request = self._client.build_request("GET", preflight.PREFLIGHT_PATH, headers=headers, timeout=timeout)
        read, _ = self.ask(request, self._parse_preflight)
        if isinstance(read, ProviderError):
            warning = f"Kombo pre-flight not read ({read.label}): attachments sent unchecked"
            return self._preflight.put_failure(integration_id, warning)
        self._preflight.put(integration_id, read)
        return read, ()

    def _parse_preflight(self, response: httpx.Response) -> preflight.Restrictions | ProviderError:
        body = json_object(response)
        if response.status_code != 200:
            error = self.parse(response)
            return error if isinstance(error, ProviderError) else bad_response(response, "Kombo pre-flight")
        if body is None or body.get("status") != "success":
            return bad_response(response, "HTTP 200 without a Kombo pre-flight body")
        return preflight.Restrictions.parse(body.get("data"))

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
            retry_after_s=retry_after_of(response),
            headers=kept_headers(response),
        )


def _with_warnings(answer: Answer, warnings: tuple[str, ...]) -> Answer:
    """The answer with applyq's pre-flight warnings: before Kombo's own on a success, in ``details`` on an error."""
    if not warnings:
        return answer
    if isinstance(answer, Accepted):
        return dataclasses.replace(answer, warnings=(*warnings, *answer.warnings))
    return dataclasses.replace(answer, details={**(answer.details or {}), "warnings": list(warnings)})


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
