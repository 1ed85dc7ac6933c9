"""What each provider can carry of a submission, and how much of it: checked at submission, by field name.

The rules read the JSON payload (the form that is stored), so they need nothing of the schema's classes. A
field the provider has no place for is refused with its name rather than left out in silence: a job board
that sends a consent or a screening answer must learn that it would not reach the ATS. Kombo's per-integration
restrictions (``GET /ats/actions/ats_create_application``) are only known at delivery; they are applied by
the Kombo adapter, not here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from worker.states import Provider

__all__ = ["CELPER_NOTES_MAX_BYTES", "MAX_ATTACHMENT_BYTES", "MAX_FILES", "NOT_CARRIED", "decoded_size", "fit_problems"]

#: Files per submission (``candidate.cv`` and ``attachments``). No vendor names a number: ours, to bound one
#: payload (each is stored in the database and sent in one request).
MAX_FILES = 10

#: Decoded bytes of all files given as base64 ``data``, per provider (files given as a URL are fetched by the
#: provider and cannot be measured here).
MAX_ATTACHMENT_BYTES: Mapping[Provider, int] = {
    # Kombo recommends keeping the total of all attachments below 10 MB (docs.kombo.dev/ats/implementation-guide/
    # creating-applications); 10 MB read as 10,000,000 bytes, the unit of its pre-flight's sizes (KSPEC example).
    Provider.KOMBO: 10_000_000,
    # StackOne's spec and docs name no limit for ``documents[].content``: our choice, the same as Kombo's (the
    # same ATSs stand behind both, and a request this size stays well inside their 60 s window).
    Provider.STACKONE: 10_000_000,
    # Celper takes one file, the CV as text: ``cvText`` ≤ 100 KB (docs.celper.ai/endpoints/candidates).
    Provider.CELPER: 100 * 1024,
}

#: Celper's limit on ``notes``: ≤ 10 KB (docs.celper.ai/endpoints/candidates).
CELPER_NOTES_MAX_BYTES = 10 * 1024

_STACKONE_NO_CONSENT = (
    "StackOne's application has no consent field (AtsCreateApplicationRequestDto, StackOne's spec); if the ATS "
    "needs it, send it in provider_fields.stackone.passthrough"
)
_STACKONE_COUNTRY_ONLY = "StackOne's candidate takes only a country (CreateCandidate.country, StackOne's spec)"
_CELPER_NO_PLACE = "Celper's candidate import has no place for it (docs.celper.ai/endpoints/candidates)"

#: Fields (dotted paths into the payload) a provider has no place for, and why.
NOT_CARRIED: Mapping[Provider, Mapping[str, str]] = {
    Provider.KOMBO: {},
    Provider.STACKONE: {
        "consent": _STACKONE_NO_CONSENT,
        "candidate.location.city": _STACKONE_COUNTRY_ONLY,
        "candidate.location.state": _STACKONE_COUNTRY_ONLY,
        "candidate.location.zip_code": _STACKONE_COUNTRY_ONLY,
        "candidate.location.street": _STACKONE_COUNTRY_ONLY,
    },
    Provider.CELPER: {
        "screening_answers": _CELPER_NO_PLACE,
        "consent": _CELPER_NO_PLACE,
        "source": _CELPER_NO_PLACE,
        "attachments": "Celper takes one file, the CV as text, in candidate.cv (cvText)",
        "candidate.company": _CELPER_NO_PLACE,
        "candidate.title": _CELPER_NO_PLACE,
        "candidate.location": _CELPER_NO_PLACE,
        "candidate.links": _CELPER_NO_PLACE,
    },
}


def fit_problems(payload: Mapping[str, Any]) -> list[str]:
    """Each way the payload does not fit its provider, as ``field: problem`` (empty: it fits)."""
    provider = Provider(payload["provider"])
    problems = [f"{path}: {why}" for path, why in NOT_CARRIED[provider].items() if _get(payload, path) is not None]
    problems += _foreign_fields(provider, payload.get("provider_fields") or {})
    problems += _file_problems(provider, payload)
    notes = _get(payload, "provider_fields.celper.notes")
    if isinstance(notes, str) and len(notes.encode()) > CELPER_NOTES_MAX_BYTES:
        problems.append("provider_fields.celper.notes: Celper takes at most 10 KB of notes")
    return problems


def decoded_size(data: str) -> int:
    """Bytes a base64 string decodes to, without decoding it."""
    return len(data) // 4 * 3 - data[-2:].count("=") if data else 0


def _foreign_fields(provider: Provider, given: Mapping[str, Any]) -> list[str]:
    return [
        f"provider_fields.{name}: the submission goes to {provider.value!r}; only provider_fields.{provider.value} "
        "applies"
        for name in given
        if name != provider.value
    ]


def _file_problems(provider: Provider, payload: Mapping[str, Any]) -> list[str]:
    files = list(_files(payload))
    problems = []
    if len(files) > MAX_FILES:
        problems.append(f"attachments: at most {MAX_FILES} files per submission, candidate.cv included")
    if provider is Provider.STACKONE:
        problems += [
            f"{path}: StackOne uploads files only as base64 'data' (documents[].content), not from a url"
            for path, item in files
            if item.get("data") is None
        ]
    total = sum(decoded_size(item["data"]) for _, item in files if isinstance(item.get("data"), str))
    limit = MAX_ATTACHMENT_BYTES[provider]
    if total > limit:
        where = "candidate.cv" if provider is Provider.CELPER else "attachments"
        hint = " (or give large files as a 'url': Kombo fetches them itself)" if provider is Provider.KOMBO else ""
        problems.append(f"{where}: the files add up to {total:,} bytes; {provider.value} takes {limit:,} at most{hint}")
    return problems


def _files(payload: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    cv = _get(payload, "candidate.cv")
    if isinstance(cv, Mapping):
        yield "candidate.cv", cv
    for index, item in enumerate(payload.get("attachments") or []):
        if isinstance(item, Mapping):
            yield f"attachments.{index}", item


def _get(payload: Mapping[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
