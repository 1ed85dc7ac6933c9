from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, RecordingPublisher, submission_dict
from worker.intake.enqueue import enqueue, validate_all


def test_a_batch_is_stored_at_once_and_published_round_robin_across_integrations(
    sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    raw = [submission_dict(idempotency_key=f"a{n}", integration_id="greenhouse:a") for n in range(3)]
    raw += [submission_dict(idempotency_key=f"b{n}", integration_id="lever:b") for n in range(2)]
    stored = enqueue(sessions, publisher, validate_all(raw), NOW)
    ids = {s.submission.idempotency_key: s.submission.id for s in stored}
    assert [s.created for s in stored] == [True] * 5
    assert publisher.published == [ids["a0"], ids["b0"], ids["a1"], ids["b1"], ids["a2"]]


def test_a_batch_with_a_known_key_replays_it_and_stores_the_rest(
    sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    [first] = enqueue(sessions, publisher, validate_all([submission_dict(idempotency_key="k1")]), NOW)
    again = enqueue(sessions, publisher, validate_all([submission_dict(idempotency_key=k) for k in ("k1", "k2")]), NOW)
    assert [(s.submission.id == first.submission.id, s.created) for s in again] == [(True, False), (False, True)]
