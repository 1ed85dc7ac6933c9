"""StackOne: ``POST /unified/ats/applications`` with Basic auth (the API key as user name) and ``x-account-id``.

``x-account-id`` is the linked account's bare id, as ``GET /accounts`` returns it (StackOne's spec: "The
account identifier"). Older applyq versions told job boards to prefix it with the ATS (``greenhouse:…``); the
prefix is stripped when the request is built (no migration: stored ids keep working) and serves only as a
hint when the account API cannot be read. The ATS behind an account, for its quirks, comes from
``GET /accounts/{id}`` (``provider``), cached for an hour and forgotten when StackOne answers 401 or 404.

StackOne's create "attempts to create a new candidate" and has no idempotency key; its error guide says to
"check that the resource doesn't already exist before creating it". So after an unknown outcome,
``look_up`` reads ``GET /unified/ats/candidates?filter[email]=…`` and those candidates' applications
(``GET /unified/ats/applications/{id}``). StackOne's reads go to the ATS (its request logs show the
provider calls), so they are as fresh as the ATS's own API.

Errors carry no fine code: the HTTP status is routed, refined by ``provider_errors[].status`` (the ATS's own
status), which is kept on the attempt as ``details`` together with ``errorCode`` and ``data``.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
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
    accepted,
    ats_name,
    bad_response,
    json_object,
    kept_headers,
    not_found,
    retry_after_of,
)
from worker.schemas import Attachment, AttachmentKind, Candidate, ScreeningAnswer, StackOneFields
from worker.states import Provider

__all__ = [
    "ACCOUNT_TTL_S",
    "DEFAULT_RETRY_AFTER_S",
    "StackOneAdapter",
    "account_id",
    "provider_errors",
    "stackone_body",
]

#: How long the ATS of an account is trusted before the account API is asked again. StackOne says nothing of
#: caching ``GET /accounts/{id}``: an hour is our choice (an account's provider changes only when re-linked,
#: and a 401 or 404 forgets it at once).
ACCOUNT_TTL_S = 3600.0
#: Applications of the candidates found by email that a lookup reads, at most.
_LOOKUP_APPLICATIONS = 20
#: Answers after which the cached account is read again: the account was re-linked or removed.
_STALE_ACCOUNT_STATUSES = frozenset({401, 404})

_JSON = "application/json"

#: StackOne's documented wait for 408 and 429 when no ``Retry-After`` came with them.
DEFAULT_RETRY_AFTER_S = 60.0
_DEFAULT_WAIT_STATUSES = (408, 429)

#: ``FileFormatEnum`` values for the content types a CV usually has.
_FILE_FORMATS = {
    "application/pdf": "pdf",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/rtf": "rtf",
    "text/rtf": "rtf",
    "text/plain": "txt",
}

#: Response headers of the ATS worth keeping from ``provider_errors[].headers``; others may carry secrets.
_SAFE_HEADERS = frozenset({"content-type", "date", "retry-after", "x-request-id", "request-id"})
_SAFE_HEADER_PREFIXES = ("x-ratelimit-", "ratelimit-")


#: ``AtsDocumentsUploadCategoryEnumApiModel.value`` for each kind of file (StackOne's spec).
_CATEGORIES = {AttachmentKind.CV: "resume", AttachmentKind.COVER_LETTER: "cover_letter", AttachmentKind.OTHER: "other"}


def _document(kind: AttachmentKind, file: Attachment) -> dict[str, Any]:
    """One of ``documents[]`` (``AtsDocumentsUploadRequestDto``): StackOne takes the content as base64 only."""
    if file.data is None:  # SubmissionIn refuses a URL file for StackOne; this is the adapter's own guard
        raise ValueError("StackOne takes files as base64 'data', not as a URL")
    document: dict[str, Any] = {"name": file.name, "content": file.data, "category": {"value": _CATEGORIES[kind]}}
    file_format = _FILE_FORMATS.get(file.content_type.split(";")[0].strip().lower())
    if file_format is not None:
        document["file_format"] = {"value": file_format}
    return document


def _answer(answer: ScreeningAnswer) -> dict[str, Any]:
    """One ``CreateAnswer``: the question's id, its type where the value tells it (``AnswerEnum``), the values
    as strings. A text answer carries no type: the value cannot tell free text from an option id."""
    value = answer.answer
    item: dict[str, Any] = {"id": answer.question_id}
    if isinstance(value, bool):
        item.update(type={"value": "boolean"}, values=["true" if value else "false"])
    elif isinstance(value, int | float):
        item.update(type={"value": "number"}, values=[str(value)])
    elif isinstance(value, list):
        item.update(type={"value": "multi_select"}, values=list(value))
    else:
        item["values"] = [value]
    return item


def _questionnaires(answers: list[ScreeningAnswer]) -> list[dict[str, Any]]:
    """``CreateQuestionnaire[]``: the answers grouped by ``questionnaire_id`` (one group without an id)."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for answer in answers:
        groups.setdefault(answer.questionnaire_id, []).append(_answer(answer))
    return [{**({"id": group} if group else {}), "answers": items} for group, items in groups.items()]


def _person(candidate: Candidate, own: StackOneFields | None) -> dict[str, Any]:
    """``CreateCandidate``: the basics, then whatever the submission has (location: its country only)."""
    person: dict[str, Any] = {
        "first_name": candidate.first_name,
        "last_name": candidate.last_name,
        "email": str(candidate.email),
    }
    if candidate.phone:
        person["phone_numbers"] = [{"phone": candidate.phone}]
    extras = {"company": candidate.company, "title": candidate.title}
    person.update({name: value for name, value in extras.items() if value})
    if candidate.location is not None:
        person["country"] = candidate.location.country  # ISO alpha-2: the spec's example is a name, its type free
    if candidate.links:
        person["social_links"] = [
            {"url": str(link.url), **({"type": link.type} if link.type else {})} for link in candidate.links
        ]
    if own is not None and own.candidate_passthrough:
        person["passthrough"] = own.candidate_passthrough
    if own is not None and own.unified_custom_fields:
        person["unified_custom_fields"] = own.unified_custom_fields
    return person


def stackone_body(delivery: Delivery) -> dict[str, Any]:
    """The JSON body of StackOne's create-application request (``AtsCreateApplicationRequestDto``)."""
    submission = delivery.submission
    own = submission.provider_fields.stackone if submission.provider_fields else None
    body: dict[str, Any] = {"job_id": submission.job_id, "candidate": _person(submission.candidate, own)}
    documents = [_document(kind, file) for kind, file in submission.files()]
    if documents:
        body["documents"] = documents
    if submission.screening_answers:
        body["questionnaires"] = _questionnaires(submission.screening_answers)
    if submission.source is not None:
        body["source"] = submission.source.model_dump(exclude_none=True)  # CreateSource {id, name}
    if own is not None:
        body.update(own.model_dump(include={"job_posting_id", "location_id", "passthrough"}, exclude_none=True))
    return body


def account_id(integration_id: str | None) -> str:
    """The bare linked-account id: an older ``ats:`` prefix removed."""
    _, _, bare = (integration_id or "").rpartition(":")
    return bare.strip()


class StackOneAdapter(Adapter):
    """StackOne's unified ATS API."""

    provider = Provider.STACKONE
    can_look_up = True

    def __init__(self, client: httpx.Client, api_key: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(client, api_key)
        self._credentials = base64.b64encode(f"{api_key}:".encode()).decode()
        self._clock = clock
        self._accounts: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def _headers(self, integration_id: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Basic {self._credentials}", "User-Agent": USER_AGENT, "Accept": _JSON}
        if integration_id is not None:
            headers["x-account-id"] = account_id(integration_id)
        return headers

    def build_request(self, delivery: Delivery) -> httpx.Request:
        """POST the application on behalf of the linked account."""
        return self._client.build_request(
            "POST",
            "unified/ats/applications",
            json=stackone_body(delivery),
            headers=self._headers(delivery.submission.integration_id),
        )

    def deliver(self, delivery: Delivery) -> tuple[Answer, float]:
        """Send one attempt; a 401 or 404 makes the account's ATS be read again next time."""
        answer, latency_ms = super().deliver(delivery)
        if isinstance(answer, ProviderError) and answer.http_status in _STALE_ACCOUNT_STATUSES:
            with self._lock:
                self._accounts.pop(account_id(delivery.submission.integration_id), None)
        return answer, latency_ms

    def ats(self, integration_id: str | None) -> str | None:
        """The account's ATS as StackOne's account API names it (cached), else the id's old prefix."""
        bare, now = account_id(integration_id), self._clock()
        with self._lock:
            cached = self._accounts.get(bare)
        if cached is not None and now - cached[1] < ACCOUNT_TTL_S:
            return cached[0] or ats_name(integration_id)
        request = self._client.build_request("GET", f"accounts/{quote(bare, safe='')}", headers=self._headers())
        provider, _ = self.ask(request, _account_provider)
        if isinstance(provider, ProviderError):
            return ats_name(integration_id)  # not cached: the account API is asked again next time
        with self._lock:
            self._accounts[bare] = (provider, now)
        return provider or ats_name(integration_id)

    def look_up(self, delivery: Delivery) -> Answer:
        """The candidate's application at this job, if any: candidates by email, then their applications."""
        submission = delivery.submission
        headers = self._headers(submission.integration_id)
        params = {"filter[email]": str(submission.candidate.email)}
        request = self._client.build_request("GET", "unified/ats/candidates", params=params, headers=headers)
        ids, _ = self.ask(request, _application_ids)
        if isinstance(ids, ProviderError):
            return ids
        for application_id in ids[:_LOOKUP_APPLICATIONS]:
            path = f"unified/ats/applications/{quote(application_id, safe='')}"
            read = self._client.build_request("GET", path, headers=headers)
            found, _ = self.ask(read, lambda response: _application_if_at(response, submission.job_id))
            if found is not None:
                return found
        return not_found("StackOne lists no application of this candidate at this job")

    def parse(self, response: httpx.Response) -> Answer:
        """Success is HTTP 201 with ``CreateResult``; an error body has ``statusCode`` and ``message``."""
        body = json_object(response)
        if 200 <= response.status_code < 300:
            return _accepted(response, body)
        if body is None or not isinstance(body.get("statusCode"), int | float) or "message" not in body:
            return bad_response(response, "not a StackOne error body")
        retry_after = retry_after_of(response)
        if retry_after is None and response.status_code in _DEFAULT_WAIT_STATUSES:
            retry_after = DEFAULT_RETRY_AFTER_S
        error_code = body.get("errorCode")
        return ProviderError(
            kind=ErrorKind.API_ERROR,
            http_status=response.status_code,
            title=error_code if isinstance(error_code, str) else None,
            message=str(body.get("message") or "(no message)"),
            request_id=response.headers.get("x-request-id"),
            retry_after_s=retry_after,
            details=_details(body),
            headers=kept_headers(response),
        )

    def _secrets(self) -> tuple[str, ...]:
        """The API key and the Basic credentials made of it."""
        return (self._api_key, self._credentials) if self._api_key else ()


def _accepted(response: httpx.Response, body: dict[str, Any] | None) -> Answer:
    data = body.get("data") if body is not None else None
    if response.status_code != 201 or not isinstance(data, dict):
        return bad_response(response, "not StackOne's 201 with a CreateResult")
    return accepted(response, data)


def provider_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``provider_errors`` of an error body, with query strings and unsafe headers removed."""
    items = body.get("provider_errors")
    if not isinstance(items, list):
        return []
    cleaned = []
    for item in items:
        if not isinstance(item, dict):
            continue
        entry = {key: item[key] for key in ("status", "url", "raw") if item.get(key) is not None}
        if isinstance(entry.get("url"), str):
            entry["url"] = entry["url"].split("?", 1)[0]
        headers = _safe_headers(item.get("headers"))
        if headers:
            entry["headers"] = headers
        cleaned.append(entry)
    return cleaned


def _details(body: dict[str, Any]) -> dict[str, Any] | None:
    details: dict[str, Any] = {}
    errors = provider_errors(body)
    if errors:
        details["provider_errors"] = errors
    if isinstance(body.get("errorCode"), str):
        details["errorCode"] = body["errorCode"]
    data = body.get("data")
    if isinstance(data, dict):
        kept = {key: data[key] for key in ("statusCode", "message") if data.get(key) is not None}
        headers = _safe_headers(data.get("headers"))
        details["data"] = {**kept, **({"headers": headers} if headers else {})}
    return details or None


def _safe_headers(headers: object) -> dict[str, Any]:
    if not isinstance(headers, dict):
        return {}
    return {
        name: value
        for name, value in headers.items()
        if isinstance(name, str) and (name.lower() in _SAFE_HEADERS or name.lower().startswith(_SAFE_HEADER_PREFIXES))
    }


def _account_provider(response: httpx.Response) -> str | ProviderError | None:
    """``provider`` of a ``LinkedAccount`` (``GET /accounts/{id}``), lower-cased."""
    body = json_object(response)
    if response.status_code != 200 or body is None:
        return bad_response(response, "not StackOne's LinkedAccount")
    provider = body.get("provider")
    return provider.strip().lower() or None if isinstance(provider, str) else None


def _application_ids(response: httpx.Response) -> list[str] | ProviderError:
    """Every ``application_ids[]`` of the candidates in a ``CandidatesPaginated`` page."""
    body = json_object(response)
    data = body.get("data") if body is not None else None
    if response.status_code != 200 or not isinstance(data, list):
        return bad_response(response, "not StackOne's CandidatesPaginated")
    ids: list[str] = []
    for candidate in data:
        found = candidate.get("application_ids") if isinstance(candidate, dict) else None
        if isinstance(found, list):
            ids.extend(str(item) for item in found if item is not None)
    return ids


def _application_if_at(response: httpx.Response, job_id: str) -> Accepted | ProviderError | None:
    """The application (``GET /unified/ats/applications/{id}``) as found if it is at ``job_id``, else None."""
    body = json_object(response)
    data = body.get("data") if body is not None else None
    if response.status_code != 200 or not isinstance(data, dict):
        return bad_response(response, "not StackOne's ApplicationResult")
    if data.get("job_id") != job_id:
        return None
    return accepted(response, data)
