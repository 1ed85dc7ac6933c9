from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, RecordingPublisher, submission_dict
from worker.db.heartbeats import Heartbeater
from worker.intake.enqueue import enqueue, validate_all
from worker.ops.health import check_health


def verdict(sessions: sessionmaker[Session], at_offset_s: float = 0.0) -> tuple[bool, list[str]]:
    with sessions() as session:
        report = check_health(
            session, NOW + timedelta(seconds=at_offset_s), max_idle_s=120, max_dispatcher_silence_s=30
        )
    return report.ok, report.problems


def test_no_dispatcher_ever_is_unhealthy(sessions: sessionmaker[Session]) -> None:
    ok, problems = verdict(sessions)
    assert not ok and "dispatcher" in problems[0]


def test_a_beating_dispatcher_and_no_due_work_is_healthy(sessions: sessionmaker[Session]) -> None:
    Heartbeater(sessions, "dispatcher", lambda: NOW).beat()
    assert verdict(sessions, 10) == (True, [])
    assert not verdict(sessions, 31)[0]


def test_overdue_work_without_consumption_is_unhealthy(
    sessions: sessionmaker[Session], publisher: RecordingPublisher
) -> None:
    enqueue(sessions, publisher, validate_all([submission_dict()]), NOW)
    Heartbeater(sessions, "dispatcher", lambda: NOW + timedelta(seconds=200)).beat()
    ok, problems = verdict(sessions, 200)
    assert not ok and "overdue" in problems[0]

    Heartbeater(sessions, "worker", lambda: NOW + timedelta(seconds=150)).beat()
    assert verdict(sessions, 200) == (True, [])


def test_heartbeats_are_throttled(sessions: sessionmaker[Session]) -> None:
    times = iter([NOW, NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=3)])
    beater = Heartbeater(sessions, "worker", lambda: next(times), every_s=2.0)
    beater.beat()
    beater.beat()
    beater.beat()
    with sessions() as session:
        from worker.db.models import Heartbeat

        [row] = session.query(Heartbeat).all()
        assert row.beat_at == NOW + timedelta(seconds=3)
