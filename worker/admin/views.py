"""JSON shapes of submissions for the CLI contract (``status``, ``list``, ``parked list``, ``show``).

Candidate data (the payload, provider messages that may quote it) appears only in ``show_json``; everywhere
else a provider's message is passed through ``worker.privacy.scrub``, which removes the candidate's own
values, email addresses and phone numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from worker.db.models import Attempt, AuditEvent, Submission
from worker.privacy import candidate_values, scrub

__all__ = ["attempt_json", "audit_json", "parked_json", "show_json", "submission_json"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def submission_json(row: Submission, *, attempts: bool = False) -> dict[str, Any]:
    """The stable JSON form of a submission (no candidate data: provider messages scrubbed)."""
    candidate = candidate_values(row.payload)
    data: dict[str, Any] = {
        "id": row.id,
        "idempotency_key": row.idempotency_key,
        "provider": row.provider,
        "integration_id": row.integration_id,
        "job_id": row.job_id,
        "status": row.status,
        "outcome_code": row.outcome_code,
        "outcome_message": scrub(row.outcome_message, candidate),
        "outcome_reason": row.outcome_reason,
        "remediation": row.remediation,
        "remote_id": row.remote_id,
        "attempt_count": row.attempt_count,
        "next_attempt_at": _iso(row.next_attempt_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }
    if attempts:
        data["attempts"] = [attempt_json(a, candidate) for a in row.attempts]
    return data


def attempt_json(row: Attempt, candidate: Sequence[str] = ()) -> dict[str, Any]:
    """One attempt of the history, its provider's title and message scrubbed of ``candidate`` and the like."""
    return {
        "number": row.number,
        "kind": row.kind,
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "latency_ms": round(row.latency_ms, 1) if row.latency_ms is not None else None,
        "http_status": row.http_status,
        "error_code": row.error_code,
        "error_title": scrub(row.error_title, candidate),
        "error_message": scrub(row.error_message, candidate),
        "log_url": row.log_url,
        "request_id": row.request_id,
        "decision": row.decision,
        "reason": row.reason,
        "delay_s": round(row.delay_s, 3) if row.delay_s is not None else None,
        "unknown_outcome": row.unknown_outcome,
    }


def _last_reference(attempts: Sequence[Attempt]) -> tuple[str | None, str | None]:
    """The newest attempt's ``log_url`` and ``request_id`` (where the provider's own logs are)."""
    for attempt in reversed(attempts):
        if attempt.log_url or attempt.request_id:
            return attempt.log_url, attempt.request_id
    return None, None


def parked_json(row: Submission) -> dict[str, Any]:
    """One parked submission for ``parked list``: why, what to do, where to look; no candidate data."""
    log_url, request_id = _last_reference(row.attempts)
    return {
        "id": row.id,
        "idempotency_key": row.idempotency_key,
        "provider": row.provider,
        "integration_id": row.integration_id,
        "job_id": row.job_id,
        "code": row.outcome_code,
        "reason": row.outcome_reason,
        "remediation": row.remediation,
        "attempt_count": row.attempt_count,
        "log_url": log_url,
        "request_id": request_id,
        "created_at": _iso(row.created_at),
        "parked_at": _iso(row.updated_at),
    }


def audit_json(event: AuditEvent) -> dict[str, Any]:
    """One entry of the audit trail."""
    return {
        "at": _iso(event.at),
        "actor": event.actor,
        "action": event.action,
        "note": event.note,
        "changes": event.changes,
    }


def show_json(row: Submission, audit: Iterable[AuditEvent]) -> dict[str, Any]:
    """Everything about one submission: ``status --json`` plus the payload, the retry window and the audit."""
    data = submission_json(row, attempts=True)
    # the provider's own words, unscrubbed (field errors, StackOne's provider_errors): remediation points here
    for attempt, stored in zip(data["attempts"], row.attempts, strict=True):
        attempt.update(error_title=stored.error_title, error_message=stored.error_message, details=stored.details)
    data.update(
        outcome_message=row.outcome_message,
        payload=_elide_cv(row.payload),
        window_started_at=_iso(row.window_started_at),
        window_attempt_base=row.window_attempt_base,
        finished_at=_iso(row.finished_at),
        audit=[audit_json(e) for e in audit],
    )
    return data


def _elide_cv(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with every file's base64 ``data`` (the CV, the attachments) replaced by its size: big, and
    useless on a terminal."""
    candidate = payload.get("candidate")
    elided = dict(payload)
    if isinstance(candidate, dict) and isinstance(candidate.get("cv"), dict):
        elided["candidate"] = {**candidate, "cv": _elide_data(candidate["cv"])}
    if isinstance(payload.get("attachments"), list):
        elided["attachments"] = [_elide_data(i) if isinstance(i, dict) else i for i in payload["attachments"]]
    return elided


def _elide_data(file: dict[str, Any]) -> dict[str, Any]:
    data = file.get("data")
    return {**file, "data": f"<{len(data)} characters of base64>"} if isinstance(data, str) else file
