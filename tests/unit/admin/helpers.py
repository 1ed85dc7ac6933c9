"""Rows in a given state, for the admin tests (SQLite)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, submission_dict
from worker.db.models import Attempt, Submission
from worker.db.submissions import add_submissions
from worker.schemas import SubmissionIn


def make(
    sessions: sessionmaker[Session],
    status: str = "parked",
    *,
    code: str | None = "REMOTE.INPUT_INVALID",
    reason: str | None = "invalid_input",
    attempts: int = 1,
    message: str | None = None,
    created: datetime = NOW,
    age_s: float = 10.0,
    **overrides: Any,
) -> str:
    """A submission with ``attempts`` finished attempts, in ``status``, last changed ``age_s`` after creation."""
    overrides.setdefault("idempotency_key", f"key-{uuid.uuid4().hex[:8]}")
    item = SubmissionIn.model_validate(submission_dict(**overrides))
    final = status in ("succeeded", "parked", "terminal", "cancelled")
    changed = created + timedelta(seconds=age_s)
    with sessions() as session:
        row = add_submissions(session, [item], created)[0].submission
        for number in range(1, attempts + 1):
            session.add(
                Attempt(
                    submission_id=row.id, number=number, started_at=created, finished_at=changed, latency_ms=12.0,
                    http_status=400, error_code=code, error_message=message, decision="park", reason=reason,
                    log_url=f"https://logs.example/{number}", request_id=f"req-{number}",
                )
            )  # fmt: skip
        session.execute(
            sa.update(Submission)
            .where(Submission.id == row.id)
            .values(
                status=status, attempt_count=attempts, outcome_code=code, outcome_reason=reason,
                outcome_message=message, remediation="Fix the payload", updated_at=changed,
                finished_at=changed if final else None, published_at=None,
            )
        )  # fmt: skip
        session.commit()
        return row.id


def row(sessions: sessionmaker[Session], submission_id: str) -> Submission:
    """A fresh copy of the row."""
    with sessions() as session:
        return session.get_one(Submission, submission_id)
