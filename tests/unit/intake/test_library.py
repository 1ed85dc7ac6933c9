"""The library enqueue API: joins the caller's transaction, publishes only after its commit, idempotent."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, RecordingPublisher, submission_dict
from worker.db.models import Submission
from worker.errors import IdempotencyConflict, InvalidSubmission, SubmissionNotFound
from worker.intake.library import Applyq
from worker.schemas import SubmissionIn


@pytest.fixture
def applyq(sessions: sessionmaker[Session], publisher: RecordingPublisher) -> Applyq:
    return Applyq(sessions, publisher, clock=lambda: NOW)


def count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(Submission)) or 0)


def test_joining_a_transaction_that_commits_publishes_after_the_commit(
    applyq: Applyq, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    with sessions() as session:
        enqueued = applyq.enqueue(submission_dict(), session=session)
        assert publisher.published == []  # not yet: the caller has not committed
        session.commit()
    assert enqueued.created
    assert publisher.published == [enqueued.submission.id]
    assert count(sessions) == 1


def test_joining_a_transaction_that_rolls_back_stores_and_publishes_nothing(
    applyq: Applyq, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    with sessions() as session:
        applyq.enqueue(submission_dict(), session=session)
        session.rollback()
        session.commit()  # a later commit of the same session must not publish the rolled-back id
    assert count(sessions) == 0
    assert publisher.published == []


def test_a_session_closed_without_commit_publishes_nothing(
    applyq: Applyq, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    with sessions() as session:
        applyq.enqueue(submission_dict(), session=session)
    with sessions() as session:
        session.commit()
    assert (count(sessions), publisher.published) == (0, [])


def test_a_rolled_back_savepoint_drops_only_its_own_submission(
    applyq: Applyq, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    with sessions() as session:
        kept = applyq.enqueue(submission_dict(idempotency_key="kept"), session=session)
        savepoint = session.begin_nested()
        applyq.enqueue(submission_dict(idempotency_key="dropped"), session=session)
        savepoint.rollback()
        with session.begin_nested():  # released, not rolled back: published with the outer commit
            released = applyq.enqueue(submission_dict(idempotency_key="released"), session=session)
        assert publisher.published == []
        session.commit()
    assert sorted(publisher.published) == sorted([kept.submission.id, released.submission.id])
    assert count(sessions) == 2


def test_a_replay_in_a_transaction_returns_the_original_and_publishes_nothing_new(
    applyq: Applyq, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    first = applyq.enqueue(submission_dict())
    with sessions() as session:
        again = applyq.enqueue(submission_dict(), session=session)
        session.commit()
    assert (again.created, again.submission.id) == (False, first.submission.id)
    assert publisher.published == [first.submission.id]


def test_a_key_reused_with_another_payload_is_refused_and_leaves_the_transaction_usable(
    applyq: Applyq, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    applyq.enqueue(submission_dict())
    with sessions() as session:
        with pytest.raises(IdempotencyConflict):
            applyq.enqueue(submission_dict(job_id="ok--other"), session=session)
        applyq.enqueue(submission_dict(idempotency_key="key-2"), session=session)
        session.commit()
    assert count(sessions) == 2


def test_own_transaction_stores_and_publishes_at_once(applyq: Applyq, publisher: RecordingPublisher) -> None:
    enqueued = applyq.enqueue(SubmissionIn.model_validate(submission_dict(metadata={"application_id": 981})))
    assert publisher.published == [enqueued.submission.id]
    view = enqueued.submission
    assert (view.status, view.metadata, view.message) == (
        "queued",
        {"application_id": 981},
        "Your application is being sent to the employer.",
    )


def test_a_failed_publish_after_commit_leaves_the_submission_to_the_dispatcher(
    applyq: Applyq, sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    publisher.fail = True
    with sessions() as session:
        enqueued = applyq.enqueue(submission_dict(), session=session)
        session.commit()  # does not raise: the commit stands
    with sessions() as session:
        assert session.get_one(Submission, enqueued.submission.id).published_at is None


def test_invalid_input_names_the_fields_and_stores_nothing(applyq: Applyq, sessions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidSubmission, match=r"candidate\.email"):
        applyq.enqueue(submission_dict(candidate={"first_name": "A", "last_name": "L", "email": "nope"}))
    assert count(sessions) == 0


def test_get_submission_by_id_or_key(applyq: Applyq) -> None:
    enqueued = applyq.enqueue(submission_dict())
    assert applyq.get_submission(enqueued.submission.id) == enqueued.submission
    assert applyq.get_submission("key-1").id == enqueued.submission.id
    with pytest.raises(SubmissionNotFound):
        applyq.get_submission("no-such-key")
