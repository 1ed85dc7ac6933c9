"""Purge: candidate data goes, the anonymous history stays."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, submission_dict
from tests.unit.admin.helpers import make, row
from worker.admin.actions import requeue
from worker.admin.edits import parse_edit
from worker.admin.purge import PURGED, emails_matching, older_than, purge, purge_older_than
from worker.admin.queries import audit_events
from worker.db.models import Attempt, WebhookEvent
from worker.db.submissions import add_submissions
from worker.errors import IdempotencyConflict
from worker.schemas import SubmissionIn

LATER = NOW + timedelta(days=100)
EMAIL = "ada@invalid.example"


def candidate(email: str = EMAIL) -> dict[str, str]:
    return {"first_name": "Ada", "last_name": "Lovelace", "email": email, "phone": "+44 20 7946 0000"}


def dump(sessions: sessionmaker[Session], submission_id: str) -> str:
    """Every stored column of the submission, its attempts and its audit trail, as one string."""
    with sessions() as session:
        rows = [
            *session.execute(sa.text("SELECT * FROM applyq_submission WHERE id = :i"), {"i": submission_id}),
            *session.execute(sa.text("SELECT * FROM applyq_attempt WHERE submission_id = :i"), {"i": submission_id}),
            *session.execute(sa.text("SELECT * FROM applyq_audit WHERE submission_id = :i"), {"i": submission_id}),
        ]
    return json.dumps([[str(v) for v in r] for r in rows])


def test_purge_by_age_removes_candidate_data_and_keeps_the_history(sessions: sessionmaker[Session]) -> None:
    message = f'field "email" ("{EMAIL}") is not valid'
    old = make(sessions, "succeeded", code=None, reason="created", candidate=candidate(), message=message)
    recent = make(sessions, "succeeded", code=None, created=LATER - timedelta(days=1), candidate=candidate())
    with sessions() as session:
        report = purge(session, older_than(timedelta(days=90), LATER), actor="dpo", note="retention", now=LATER)
    assert (report.purged, report.cancelled, report.skipped) == ([old], [], [])
    stored = dump(sessions, old)
    for personal in ("Ada", "Lovelace", EMAIL, "7946"):
        assert personal not in stored
    after = row(sessions, old)
    assert (after.status, after.attempt_count, after.outcome_reason, after.job_id) == (
        "succeeded",
        1,
        "created",
        "ok--job-1",
    )
    assert after.payload["candidate"] is None and after.payload["idempotency_key"] == after.idempotency_key
    assert after.payload_hash == PURGED
    with sessions() as session:
        attempt = session.scalars(sa.select(Attempt).where(Attempt.submission_id == old)).one()
        assert (attempt.decision, attempt.http_status, attempt.log_url, attempt.error_message) == (
            "park", 400, "https://logs.example/1", None,
        )  # fmt: skip
        [event] = audit_events(session, old)
    assert (event.actor, event.action, event.note) == ("dpo", "purge", "retention")
    assert row(sessions, recent).payload["candidate"]["email"] == EMAIL


def test_purge_by_age_leaves_work_that_is_still_active(sessions: sessionmaker[Session]) -> None:
    queued = make(sessions, "queued")
    with sessions() as session:
        report = purge(session, older_than(timedelta(days=90), LATER), actor="dpo", note="retention", now=LATER)
    assert report.purged == []
    assert row(sessions, queued).payload["candidate"] is not None


def test_purge_by_age_leaves_parked_work_unless_asked_and_then_tells_the_job_board(
    sessions: sessionmaker[Session],
) -> None:
    parked = make(sessions, "parked", candidate=candidate())
    with sessions() as session:
        report = purge_older_than(session, timedelta(days=90), actor="dpo", now=LATER, dry_run=True)
    assert (report.purged, report.cancelled) == ([], [])
    assert report.scope.startswith("succeeded, terminal or cancelled, unchanged since ")
    with sessions() as session:
        report = purge_older_than(
            session, timedelta(days=90), actor="dpo", now=LATER, dry_run=False, include_parked=True
        )
    assert (report.purged, report.cancelled) == ([parked], [parked])
    assert "or parked (cancelled by the purge)" in report.scope
    assert (row(sessions, parked).status, row(sessions, parked).outcome_reason) == ("cancelled", "purged")
    with sessions() as session:
        [event] = session.scalars(sa.select(WebhookEvent)).all()
    assert (event.submission_id, event.payload["status"], event.payload["reason"]) == (parked, "cancelled", "purged")


def test_purge_by_email_finds_edited_submissions_through_the_messages_that_quote_the_old_address(
    sessions: sessionmaker[Session],
) -> None:
    quoted = f'Sandbox ATS rejected the candidate: field "candidate.email_address" ("{EMAIL.upper()}")'
    edited = make(sessions, candidate=candidate(), message=quoted)
    with sessions() as session:
        fix = [parse_edit("candidate.email=ada@example.com")]
        requeue(session, [edited], actor="alice", now=NOW, note="fixed the email", edits=fix)
    direct = make(sessions, "parked", candidate=candidate())
    in_flight = make(sessions, "in_flight", candidate=candidate())
    with sessions() as session:
        report = purge(session, emails_matching(EMAIL), actor="dpo", note="request", now=LATER)
    assert sorted(report.purged) == sorted([edited, direct])
    assert sorted(report.cancelled) == sorted([edited, direct])  # queued / parked: can't be delivered any more
    assert report.skipped == [in_flight]
    assert row(sessions, edited).status == "cancelled"
    assert EMAIL not in dump(sessions, edited).lower() and "ada@example.com" not in dump(sessions, edited)
    assert "fixed the email" not in dump(sessions, edited)  # operators' notes may quote the candidate


def test_an_address_is_matched_literally(sessions: sessionmaker[Session]) -> None:
    exact = make(sessions, "succeeded", message="rejected: a_b@example.com")
    lookalike = make(sessions, "succeeded", message="rejected: axb@example.com")
    with sessions() as session:
        report = purge(session, emails_matching("A_B@example.com"), actor="dpo", note="request", now=LATER)
    assert report.purged == [exact]
    assert row(sessions, lookalike).payload["candidate"] is not None


def test_a_dry_run_changes_nothing(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions, candidate=candidate())
    with sessions() as session:
        report = purge(session, emails_matching(EMAIL), actor="dpo", note="request", now=LATER, dry_run=True)
    assert report.purged == [submission_id]
    assert row(sessions, submission_id).payload["candidate"]["email"] == EMAIL


def test_a_purged_submission_is_never_delivered_again_by_a_replay(sessions: sessionmaker[Session]) -> None:
    original = submission_dict(idempotency_key="jb-9", candidate=candidate())
    make(sessions, "succeeded", **original)
    with sessions() as session:
        purge(session, emails_matching(EMAIL), actor="dpo", note="request", now=LATER)
    with sessions() as session, pytest.raises(IdempotencyConflict):
        add_submissions(session, [SubmissionIn.model_validate(original)], LATER)


def test_purging_twice_does_nothing_the_second_time(sessions: sessionmaker[Session]) -> None:
    make(sessions, "succeeded", candidate=candidate())
    with sessions() as session:
        assert len(purge(session, emails_matching(EMAIL), actor="dpo", note="request", now=LATER).purged) == 1
    with sessions() as session:
        assert purge(session, older_than(timedelta(days=1), LATER), actor="dpo", note="again", now=LATER).purged == []
