"""Idempotency keys per client scope: one API token's keys neither collide with nor reveal another's."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, RecordingPublisher, submission_dict
from worker.db.submissions import add_submissions, find_by_reference, find_submission
from worker.errors import IdempotencyConflict, InvalidInput, InvalidSubmission
from worker.intake.enqueue import enqueue, validate_all
from worker.schemas import SubmissionIn


def item(**overrides: object) -> SubmissionIn:
    return SubmissionIn.model_validate(submission_dict(idempotency_key="shared-key", **overrides))


def store(sessions: sessionmaker[Session], submission: SubmissionIn, scope: str) -> tuple[str, bool]:
    with sessions() as session:
        [stored] = add_submissions(session, [submission], NOW, scope=scope)
        session.commit()
        return stored.submission.id, stored.created


def test_two_scopes_using_one_key_get_two_submissions_and_each_its_own_replay(
    sessions: sessionmaker[Session],
) -> None:
    a, created_a = store(sessions, item(job_id="job-a"), "ta")
    b, created_b = store(sessions, item(job_id="job-b"), "tb")
    assert a != b and created_a and created_b
    assert store(sessions, item(job_id="job-a"), "ta") == (a, False)
    assert store(sessions, item(job_id="job-b"), "tb") == (b, False)
    with sessions() as session, pytest.raises(IdempotencyConflict):
        add_submissions(session, [item(job_id="job-b")], NOW, scope="ta")


def test_a_key_is_found_only_in_its_own_scope_an_id_everywhere(sessions: sessionmaker[Session]) -> None:
    a, _ = store(sessions, item(), "ta")
    with sessions() as session:
        assert find_submission(session, "shared-key", scope="tb") is None
        assert find_submission(session, "shared-key", scope="ta").id == a  # type: ignore[union-attr]
        assert find_submission(session, a, scope="tb").id == a  # type: ignore[union-attr]


def test_an_operator_finds_a_key_in_any_scope_and_is_told_when_it_is_ambiguous(
    sessions: sessionmaker[Session],
) -> None:
    a, _ = store(sessions, item(job_id="job-a"), "ta")
    with sessions() as session:
        assert find_by_reference(session, "shared-key").id == a  # type: ignore[union-attr]
    b, _ = store(sessions, item(job_id="job-b"), "tb")
    with sessions() as session, pytest.raises(InvalidInput, match=f"{a}.*{b}|{b}.*{a}"):
        find_by_reference(session, "shared-key")


def test_a_key_stored_before_scopes_existed_is_replayed_for_a_token_with_the_same_payload(
    sessions: sessionmaker[Session],
) -> None:
    legacy, _ = store(sessions, item(), "default")  # migration 0005 put every earlier key here
    assert store(sessions, item(), "ta") == (legacy, False)  # the same application: never a second delivery
    other, created = store(sessions, item(job_id="another-job"), "ta")  # not the same: invisible, and its own
    assert created and other != legacy


def test_a_key_repeated_with_another_payload_in_one_batch_stores_nothing_and_names_the_lines(
    sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    raw = [submission_dict(idempotency_key="k", job_id="j1"), submission_dict(idempotency_key="k", job_id="j2")]
    with pytest.raises(InvalidSubmission, match="line 2: idempotency_key: also used by line 1 with a different"):
        validate_all(raw, label="line")


def test_a_key_repeated_with_the_same_payload_in_one_batch_is_one_stored_submission(
    sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    raw = [submission_dict(idempotency_key="k"), submission_dict(idempotency_key="k")]
    first, second = enqueue(sessions, publisher, validate_all(raw), NOW)
    assert first.submission.id == second.submission.id and (first.created, second.created) == (True, False)
    with sessions() as session:
        assert find_submission(session, first.submission.id) is not None
    assert publisher.published == [first.submission.id]
