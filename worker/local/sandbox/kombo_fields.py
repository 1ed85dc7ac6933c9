"""Kombo's checks of a full application: the body's fields as Kombo's spec shapes them, and the integration's
pre-flight (``GET /ats/actions/ats_create_application``) with what follows from it.

Each check answers the first problem as a Kombo ``PLATFORM.INPUT_INVALID`` message would name it, or None.
An integration's ``attachment_restrictions`` are ``null`` (Kombo knows nothing) until set through
``PUT /_sandbox/kombo/restrictions/{integration_id}``; a POST that breaks them is refused the way the ATS
would refuse it (``REMOTE.INPUT_INVALID``), so a test sees whether the client fitted the application first.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ATTACHMENT_TYPES", "body_problem", "preflight_body", "restriction_problem", "restrictions_problem"]

#: KSPEC ``attachments[].type``.
ATTACHMENT_TYPES = ("CV", "COVER_LETTER", "OTHER")
_CONTENT_TYPE = re.compile(r"^[\w.-]+/[\w.-]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?)?Z?$")


def preflight_body(restrictions: Any) -> dict[str, Any]:
    """The pre-flight's positive answer (KSPEC ``GetAtsActionsAtsCreateApplicationPositiveResponse``)."""
    return {"status": "success", "data": {"attachment_restrictions": restrictions}}


def body_problem(body: Mapping[str, Any]) -> str | None:
    """The first field of the body Kombo's spec does not allow, as Kombo's message names it."""
    for check in _CHECKS:
        problem = check(body)
        if problem is not None:
            return f"Invalid request body: {problem}"
    return None


def restriction_problem(body: Mapping[str, Any], restrictions: Any) -> str | None:
    """What the integration's ATS refuses of the attachments, given its pre-flight's restrictions."""
    if not isinstance(restrictions, dict):
        return None
    attachments = [a for a in body.get("attachments") or [] if isinstance(a, dict)]
    types = restrictions.get("types") or {}
    for kind in ATTACHMENT_TYPES:
        rule = types.get(kind) or {}
        mine = [a for a in attachments if a.get("type") == kind]
        if mine and rule.get("is_supported") is False:
            return f"The ATS does not accept {kind} attachments."
        problem = _amount_problem(kind, rule, mine)
        if problem is not None:
            return problem
    total = restrictions.get("total_size_bytes")
    size = sum(_size(a) for a in attachments)
    if isinstance(total, int | float) and size > total:
        return f"The attachments ({size} bytes) exceed the ATS's {int(total)} bytes in total."
    return None


def restrictions_problem(value: Any) -> str | None:
    """Why ``value`` is not an ``attachment_restrictions`` object (or null) as KSPEC shapes it."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("types"), dict):
        return "attachment_restrictions is null or an object with total_size_bytes and types"
    missing = [kind for kind in ATTACHMENT_TYPES if not isinstance(value["types"].get(kind), dict)]
    if missing:
        return f"types needs an object for each of {', '.join(ATTACHMENT_TYPES)}; missing {', '.join(missing)}"
    return None


def _amount_problem(kind: str, rule: Mapping[str, Any], mine: list[dict[str, Any]]) -> str | None:
    low, high, largest = rule.get("min_amount"), rule.get("max_amount"), rule.get("max_file_size_bytes")
    if isinstance(low, int | float) and len(mine) < low:
        return f"The ATS requires at least {int(low)} {kind} attachment(s)."
    if isinstance(high, int | float) and len(mine) > high:
        return f"The ATS accepts at most {int(high)} {kind} attachment(s)."
    accepted = rule.get("accepted_mime_types")
    for item in mine:
        if isinstance(accepted, list) and str(item.get("content_type", "")).lower() not in accepted:
            return f"The ATS does not accept {kind} attachments of type {item.get('content_type')}."
        if isinstance(largest, int | float) and _size(item) > largest:
            return f"A {kind} attachment exceeds the ATS's {int(largest)} bytes."
    return None


def _size(item: Mapping[str, Any]) -> int:
    data = item.get("data")
    if not isinstance(data, str):
        return 0
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return 0


def _attachments(body: Mapping[str, Any]) -> str | None:
    items = body.get("attachments", [])
    if not isinstance(items, list):
        return '"attachments" must be an array.'
    for index, item in enumerate(items):
        where = f'"attachments[{index}]'
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            return f'{where}.name" is required.'
        if item.get("type") not in ATTACHMENT_TYPES:
            return f'{where}.type" must be one of {", ".join(ATTACHMENT_TYPES)}.'
        if ("data" in item) == ("data_url" in item):
            return f'{where}": provide either "data" or "data_url".'
        if "data" in item and not _CONTENT_TYPE.match(str(item.get("content_type", ""))):
            return f'{where}.content_type" is required with "data" and must look like "application/pdf".'
        if "data" in item and not _is_base64(item["data"]):
            return f'{where}.data" must be base64.'
    return None


def _is_base64(value: object) -> bool:
    try:
        base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return False
    return isinstance(value, str)


def _answers(body: Mapping[str, Any]) -> str | None:
    items = body.get("screening_question_answers", [])
    if not isinstance(items, list):
        return '"screening_question_answers" must be an array.'
    for index, item in enumerate(items):
        where = f'"screening_question_answers[{index}]'
        if not isinstance(item, dict) or not isinstance(item.get("question_id"), str) or "answer" not in item:
            return f'{where}" needs "question_id" and "answer".'
        answer = item["answer"]
        multi = isinstance(answer, list) and all(isinstance(option, str) for option in answer)
        if not (multi or isinstance(answer, str | bool | int | float | dict)):
            return f'{where}.answer" must be a string, boolean, number, array of option ids or a file.'
    return None


def _consent(body: Mapping[str, Any]) -> str | None:
    consent = body.get("gdpr_consent")
    if consent is None:
        return None
    if not isinstance(consent, dict) or not isinstance(consent.get("given", False), bool):
        return '"gdpr_consent.given" must be a boolean.'
    expires = consent.get("expires_at")
    if expires is not None and not (isinstance(expires, str) and _DATE_TIME.match(expires)):
        return '"gdpr_consent.expires_at" must be an ISO 8601 date-time in UTC.'
    return None


def _candidate_extras(body: Mapping[str, Any]) -> str | None:
    candidate = body.get("candidate") or {}
    location = candidate.get("location")
    if location is not None and not (isinstance(location, dict) and _COUNTRY.match(str(location.get("country")))):
        return '"candidate.location.country" must be an upper-case ISO 3166-1 alpha-2 code.'
    links = candidate.get("social_links", [])
    if not isinstance(links, list) or not all(isinstance(link, dict) and link.get("url") for link in links):
        return '"candidate.social_links" must be an array of objects with a "url".'
    return None


def _passthrough(body: Mapping[str, Any]) -> str | None:
    for name in ("source", "sourced_by", "remote_fields"):
        if name in body and not isinstance(body[name], dict):
            return f'"{name}" must be an object.'
    if "stage_id" in body and not isinstance(body["stage_id"], str):
        return '"stage_id" must be a string.'
    sourced_by = body.get("sourced_by")
    if isinstance(sourced_by, dict) and not isinstance(sourced_by.get("user_id"), str):
        return '"sourced_by.user_id" is required.'
    return None


_CHECKS: tuple[Callable[[Mapping[str, Any]], str | None], ...] = (
    _attachments,
    _answers,
    _consent,
    _candidate_extras,
    _passthrough,
)
