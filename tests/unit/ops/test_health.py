from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, RecordingPublisher, submission_dict
from tests.unit.runtime.test_pipeline import Clock
from tests.unit.runtime.test_pipeline import clock as clock  # beats and the verdict are the database's time:
from tests.unit.runtime.test_pipeline import sessions as sessions  # here, the test's clock
from worker.db.heartbeats import Heartbeater
from worker.db.models import Heartbeat
from worker.intake.enqueue import enqueue, validate_all
from worker.ops.health import check_health


def verdict(sessions: sessionmaker[Session]) -> tuple[bool, list[str]]:
    with sessions() as session:
        report = check_health(session, max_idle_s=120, max_dispatcher_silence_s=30)
    return report.ok, report.problems


def test_no_dispatcher_ever_is_unhealthy(sessions: sessionmaker[Session]) -> None:
    ok, problems = verdict(sessions)
    assert not ok and "dispatcher" in problems[0]


def test_a_beating_dispatcher_and_no_due_work_is_healthy(sessions: sessionmaker[Session], clock: Clock) -> None:
    Heartbeater(sessions, "dispatcher").beat()
    clock.advance(10)
    assert verdict(sessions) == (True, [])
    clock.advance(21)
    assert not verdict(sessions)[0]


def test_overdue_work_without_consumption_is_unhealthy(
    sessions: sessionmaker[Session], publisher: RecordingPublisher, clock: Clock
) -> None:
    enqueue(sessions, publisher, validate_all([submission_dict()]), NOW)
    clock.advance(200)
    Heartbeater(sessions, "dispatcher").beat()
    ok, problems = verdict(sessions)
    assert not ok and "overdue" in problems[0]

    Heartbeater(sessions, "worker").beat()  # a worker consumed just now
    assert verdict(sessions) == (True, [])


def test_heartbeats_are_throttled_by_the_monotonic_clock(sessions: sessionmaker[Session], clock: Clock) -> None:
    ticks = iter([0.0, 0.0, 1.0, 3.0])
    beater = Heartbeater(sessions, "worker", every_s=2.0, monotonic=lambda: next(ticks))
    for _ in range(3):
        beater.beat()
        clock.advance(1.5)
    beater.beat()
    with sessions() as session:
        [row] = session.query(Heartbeat).all()
        assert (row.started_at, row.beat_at) == (NOW, NOW + timedelta(seconds=4.5))
