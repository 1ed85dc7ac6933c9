"""Operator actions on SQLite: requeue (with edits), cancel, the parked list and show (stats: test_stats.py)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, submission_dict
from tests.unit.admin.helpers import make, row
from worker.admin.actions import Result, cancel, requeue
from worker.admin.edits import parse_edit
from worker.admin.queries import ParkedFilter, audit_events, parked, parked_ids
from worker.admin.views import show_json
from worker.db.leases import claim, due_submission_ids
from worker.db.models import AuditEvent, Submission
from worker.db.submissions import add_submissions, provider_idempotency_key
from worker.errors import IdempotencyConflict, InvalidSubmission
from worker.schemas import SubmissionIn

LATER = NOW + timedelta(hours=1)


def audit(sessions: sessionmaker[Session], submission_id: str) -> list[AuditEvent]:
    with sessions() as session:
        return audit_events(session, submission_id)


def test_requeue_puts_a_parked_submission_back_with_a_fresh_retry_window(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions, attempts=4, code="PLATFORM.RATE_LIMIT_EXCEEDED", reason="retries_exhausted")
    with sessions() as session:
        results = requeue(session, [submission_id], actor="alice", now=LATER, note="provider recovered")
    assert [(r.result, r.status) for r in results] == [(Result.REQUEUED, "parked")]
    after = row(sessions, submission_id)
    assert (after.status, after.next_attempt_at, after.published_at) == ("queued", LATER, None)
    assert (after.window_started_at, after.window_attempt_base, after.attempt_count) == (LATER, 4, 4)
    assert (after.lease_token, after.finished_at) == (None, None)
    [event] = audit(sessions, submission_id)
    assert (event.actor, event.action, event.note) == ("alice", "requeue", "provider recovered")
    assert event.changes == {"status": ["parked", "queued"], "window_attempt_base": 4}
    with sessions() as session:  # the dispatcher publishes it at once
        assert submission_id in due_submission_ids(session, republish_after_s=60, limit=10, skip_locked=False)
    with sessions() as session:  # and the next claim counts attempt 1 of a new window
        lease = claim(session, [submission_id], 30).get(submission_id)
    assert lease is not None and (lease.attempt_number, lease.window_attempt) == (5, 1)


@pytest.mark.parametrize("status", ["queued", "in_flight", "retry_scheduled", "succeeded", "terminal", "cancelled"])
def test_requeue_refuses_what_is_not_parked(sessions: sessionmaker[Session], status: str) -> None:
    submission_id = make(sessions, status)
    with sessions() as session:
        [result] = requeue(session, [submission_id], actor="alice", now=LATER)
    assert (result.result, result.status, result.message) == (Result.REFUSED, status, f"is {status}, not parked")
    assert row(sessions, submission_id).status == status
    assert audit(sessions, submission_id) == []


def test_requeue_does_not_override_a_change_made_after_it_looked(sessions: sessionmaker[Session]) -> None:
    first, second = make(sessions), make(sessions)

    def worker_gets_there_first(_: object) -> None:
        with sessions() as other:
            other.execute(sa.update(Submission).where(Submission.id == second).values(status="queued"))
            other.commit()

    with sessions() as session:
        results = requeue(session, [first, second], actor="alice", now=LATER, progress=worker_gets_there_first)
    assert [r.result for r in results] == [Result.REQUEUED, Result.REFUSED]
    assert "changed meanwhile" in results[1].message
    assert audit(sessions, second) == []


def test_a_submission_named_twice_is_requeued_once(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions, idempotency_key="jb-7")
    with sessions() as session:
        results = requeue(session, [submission_id, "jb-7", submission_id], actor="alice", now=LATER)
    assert [r.result for r in results] == [Result.REQUEUED]
    assert len(audit(sessions, submission_id)) == 1


def test_requeue_of_an_unknown_id_is_not_found(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        [result] = requeue(session, ["nope"], actor="alice", now=LATER)
    assert result.result is Result.NOT_FOUND


def test_an_edit_is_validated_applied_and_audited_by_field_name_only(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions, candidate={"first_name": "Ada", "last_name": "L", "email": "ada@invalid.example"})
    before = row(sessions, submission_id)
    edits = [parse_edit("candidate.email=ada@example.com"), parse_edit("candidate.phone=+44 20 7946 0000")]
    with sessions() as session:
        [result] = requeue(session, [submission_id], actor="alice", now=LATER, edits=edits)
    assert result.result is Result.REQUEUED
    after = row(sessions, submission_id)
    assert after.payload["candidate"]["email"] == "ada@example.com"
    assert after.payload["candidate"]["phone"] == "+44 20 7946 0000"
    # the fingerprint of what the job board sent stays; the key sent to providers is new with the new payload
    # (Celper refuses a reused key with another body for 24 h), and the same edit gives the same key
    assert after.payload_hash == before.payload_hash
    assert after.provider_idempotency_key != before.provider_idempotency_key
    edited = SubmissionIn.model_validate(after.payload)
    assert after.provider_idempotency_key == provider_idempotency_key(edited.idempotency_key, edited.payload_hash())
    [event] = audit(sessions, submission_id)
    assert event.changes is not None and event.changes["fields"] == ["candidate.email", "candidate.phone"]
    assert "example" not in json.dumps(event.changes) and "7946" not in json.dumps(event.changes)


def test_non_candidate_fields_are_audited_with_their_values_and_update_the_columns(
    sessions: sessionmaker[Session],
) -> None:
    submission_id = make(sessions, job_id="ok--job-1")
    edits = [parse_edit("job_id=ok--job-2"), parse_edit("integration_id=greenhouse:new")]
    with sessions() as session:
        requeue(session, [submission_id], actor="alice", now=LATER, edits=edits)
    after = row(sessions, submission_id)
    assert (after.job_id, after.integration_id) == ("ok--job-2", "greenhouse:new")
    [event] = audit(sessions, submission_id)
    assert event.changes is not None
    assert event.changes["job_id"] == ["ok--job-1", "ok--job-2"]
    assert event.changes["integration_id"] == ["greenhouse:abc123", "greenhouse:new"]


def test_an_invalid_edit_changes_nothing_for_any_of_the_submissions(sessions: sessionmaker[Session]) -> None:
    ids = [make(sessions), make(sessions)]
    with sessions() as session, pytest.raises(InvalidSubmission) as caught:
        requeue(session, ids, actor="alice", now=LATER, edits=[parse_edit("candidate.email=not-an-email")])
    assert f"{ids[0]}: candidate.email" in str(caught.value)
    assert [row(sessions, i).status for i in ids] == ["parked", "parked"]


def test_after_an_edit_the_job_board_replaying_its_original_request_gets_the_submission(
    sessions: sessionmaker[Session],
) -> None:
    original = submission_dict(
        idempotency_key="jb-1", candidate={"first_name": "Ada", "last_name": "L", "email": "ada@invalid.example"}
    )
    submission_id = make(sessions, **original)
    with sessions() as session:
        requeue(session, [submission_id], actor="alice", now=LATER, edits=[parse_edit("candidate.email=a@example.com")])
    with sessions() as session:
        [replay] = add_submissions(session, [SubmissionIn.model_validate(original)], LATER)
        assert (replay.submission.id, replay.created) == (submission_id, False)
        assert replay.submission.payload["candidate"]["email"] == "a@example.com"
        edited = {**original, "candidate": {**original["candidate"], "email": "a@example.com"}}
        with pytest.raises(IdempotencyConflict):
            add_submissions(session, [SubmissionIn.model_validate(edited)], LATER)


def test_cancel_withdraws_waiting_work_and_refuses_work_in_flight_or_final(sessions: sessionmaker[Session]) -> None:
    ids = {s: make(sessions, s) for s in ("queued", "retry_scheduled", "parked", "in_flight", "succeeded")}
    with sessions() as session:
        results = cancel(session, list(ids.values()), actor="bob", reason="candidate withdrew", now=LATER)
    assert [r.result for r in results] == [Result.CANCELLED] * 3 + [Result.REFUSED] * 2
    assert "a worker is delivering it" in results[3].message
    assert row(sessions, ids["queued"]).status == "cancelled"
    [event] = audit(sessions, ids["queued"])
    assert (event.actor, event.action, event.note) == ("bob", "cancel", "candidate withdrew")
    with sessions() as session:  # a message still in Redis for it finds nothing to claim
        assert claim(session, [ids["queued"]], 30) == {}


def test_admin_actions_log_one_structured_line_without_candidate_data(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    submission_id = make(sessions)
    caplog.set_level(logging.INFO, logger="applyq.admin")
    with sessions() as session:
        requeue(session, [submission_id], actor="alice", now=LATER, edits=[parse_edit("candidate.email=z@example.com")])
    [record] = [r for r in caplog.records if r.name == "applyq.admin"]
    assert (record.levelname, record.getMessage()) == ("INFO", "admin requeue")
    fields = vars(record)
    assert (fields["submission_id"], fields["actor"], fields["from_status"], fields["to_status"]) == (
        submission_id, "alice", "parked", "queued",
    )  # fmt: skip
    assert fields["fields"] == ["candidate.email"]
    assert "z@example.com" not in json.dumps({k: str(v) for k, v in fields.items()})


def test_the_parked_list_filters_by_provider_code_integration_reason_and_time(
    sessions: sessionmaker[Session],
) -> None:
    a = make(sessions, code="INTEGRATION.PERMISSION_MISSING", reason="permission_missing", integration_id="g:1")
    b = make(
        sessions, code="INTEGRATION.PERMISSION_MISSING", reason="permission_missing", integration_id="g:2", age_s=20
    )
    c = make(sessions, code="REMOTE.INPUT_INVALID", created=NOW + timedelta(hours=2))
    make(sessions, "succeeded")
    with sessions() as session:
        assert [r.id for r in parked(session, ParkedFilter())] == [a, b, c]
        assert parked_ids(session, ParkedFilter(code="INTEGRATION.PERMISSION_MISSING", integration_id="g:2")) == [b]
        assert parked_ids(session, ParkedFilter(reason="permission_missing")) == [a, b]
        assert parked_ids(session, ParkedFilter(since=NOW + timedelta(hours=1))) == [c]
        assert parked_ids(session, ParkedFilter(provider="celper")) == []


def test_show_has_the_payload_attempts_and_the_audit_trail(sessions: sessionmaker[Session]) -> None:
    cv = {"name": "cv.pdf", "data": "QUJD" * 100}
    submission_id = make(sessions, candidate={"first_name": "Ada", "last_name": "L", "email": "a@x.org", "cv": cv})
    with sessions() as session:
        requeue(session, [submission_id], actor="alice", now=LATER, note="retry after fix")
    with sessions() as session:
        submission = session.get_one(Submission, submission_id)
        data = show_json(submission, audit_events(session, submission_id))
    assert data["payload"]["candidate"]["email"] == "a@x.org"
    assert data["payload"]["candidate"]["cv"]["data"] == "<400 characters of base64>"
    assert [a["error_code"] for a in data["attempts"]] == ["REMOTE.INPUT_INVALID"]
    assert [(e["actor"], e["action"], e["note"]) for e in data["audit"]] == [("alice", "requeue", "retry after fix")]


def test_resume_held_makes_the_providers_waiting_submissions_due_now(sessions: sessionmaker[Session]) -> None:
    from worker.admin.actions import resume_held

    waiting, other_provider, parked = make(sessions, "queued", attempts=0), make(sessions, "queued", attempts=0,
        provider="celper", integration_id=None), make(sessions)  # fmt: skip
    with sessions() as session:
        session.execute(sa.update(Submission).values(next_attempt_at=LATER))
        session.commit()
        resumed = resume_held(session, "kombo", actor="ops", now=NOW)
    assert resumed == [waiting]
    assert row(sessions, waiting).next_attempt_at == NOW
    assert row(sessions, other_provider).next_attempt_at == LATER
    assert row(sessions, parked).status == "parked"
