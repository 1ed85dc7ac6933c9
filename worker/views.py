"""JSON shapes of submissions for the CLI contract (``applyq status`` / ``applyq list``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.models import Attempt, Submission

__all__ = ["attempt_json", "submission_json"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def submission_json(row: Submission, *, attempts: bool = False) -> dict[str, Any]:
    """The stable JSON form of a submission (no candidate data)."""
    data: dict[str, Any] = {
        "id": row.id,
        "idempotency_key": row.idempotency_key,
        "provider": row.provider,
        "integration_id": row.integration_id,
        "job_id": row.job_id,
        "status": row.status,
        "outcome_code": row.outcome_code,
        "outcome_message": row.outcome_message,
        "outcome_reason": row.outcome_reason,
        "remediation": row.remediation,
        "remote_id": row.remote_id,
        "attempt_count": row.attempt_count,
        "next_attempt_at": _iso(row.next_attempt_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }
    if attempts:
        data["attempts"] = [attempt_json(a) for a in row.attempts]
    return data


def attempt_json(row: Attempt) -> dict[str, Any]:
    """One attempt of the history."""
    return {
        "number": row.number,
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "latency_ms": round(row.latency_ms, 1) if row.latency_ms is not None else None,
        "http_status": row.http_status,
        "error_code": row.error_code,
        "error_title": row.error_title,
        "error_message": row.error_message,
        "log_url": row.log_url,
        "request_id": row.request_id,
        "decision": row.decision,
        "reason": row.reason,
        "delay_s": round(row.delay_s, 3) if row.delay_s is not None else None,
        "unknown_outcome": row.unknown_outcome,
    }
