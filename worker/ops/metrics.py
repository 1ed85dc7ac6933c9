"""Prometheus metrics Flower cannot give: outcomes per provider and code, and the backlogs, from the database.

Flower's ``/metrics`` counts Celery events (tasks received/succeeded, runtimes, workers online), but a
task "succeeds" whether the application was created, retried or parked. These are read from the
database on every scrape, so they are right after restarts and agree with ``applyq stats``. No scrape
reads the history: the backlogs (queued, scheduled, in flight, parked) are read through indexes, and what
grows with history (attempts, ended submissions) comes from the tallies the database keeps as rows
change (``worker/db/tally.py``), which ``applyq prune`` leaves in place:

* ``applyq_submissions{provider,status}``: submissions per status (gauge)
* ``applyq_parked_submissions{provider,code,reason}``: the parked backlog, what needs a human (gauge)
* ``applyq_parked_oldest_seconds{provider}``: how long the oldest parked submission has waited (gauge)
* ``applyq_due_submissions{provider}`` / ``applyq_due_oldest_seconds{provider}``: due but not yet picked
  up; a growing value means workers or the dispatcher are behind or down (gauges)
* ``applyq_attempt_outcomes_total{provider,decision,code}``: every recorded attempt (counter)

Another database source is one more function in ``SOURCES``: it takes a session and the time, and
yields metric families. Traffic control's state lives in Redis, not here: ``worker/ops/traffic_metrics.py``
adds it to the same registry.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.orm import QueryableAttribute, Session, sessionmaker

from worker.db.models import Submission
from worker.db.tally import ATTEMPT, ENDED, counts
from worker.states import CLAIMABLE_STATUSES, ENDED_STATUSES, Status, values

__all__ = ["SOURCES", "ApplyqCollector", "Source", "build_registry", "serve_metrics"]

Source = Callable[[Session, datetime], Iterable[Metric]]
_DUE = values(CLAIMABLE_STATUSES)
#: statuses a submission passes through: few rows each, found through the status index
_BACKLOG = values(frozenset(Status) - ENDED_STATUSES)


def submissions_by_status(session: Session, now: datetime) -> Iterator[Metric]:
    """``applyq_submissions{provider,status}``."""
    family = GaugeMetricFamily("applyq_submissions", "Submissions per status.", labels=["provider", "status"])
    columns = (Submission.provider, Submission.status)
    query = sa.select(*columns, sa.func.count()).where(Submission.status.in_(_BACKLOG)).group_by(*columns)
    for provider, status, n in session.execute(query):
        family.add_metric([provider, status], n)
    for ended in counts(session, ENDED, by=("provider", "label")):
        family.add_metric([ended.provider, ended.label], ended.n)
    yield family


def parked_backlog(session: Session, now: datetime) -> Iterator[Metric]:
    """``applyq_parked_submissions{provider,code,reason}`` and ``applyq_parked_oldest_seconds{provider}``."""
    parked = Submission.status == Status.PARKED.value
    columns = (Submission.provider, Submission.outcome_code, Submission.outcome_reason)
    family = GaugeMetricFamily(
        "applyq_parked_submissions", "Parked submissions (need a human).", labels=["provider", "code", "reason"]
    )
    for provider, code, reason, n in session.execute(
        sa.select(*columns, sa.func.count()).where(parked).group_by(*columns)
    ):
        family.add_metric([provider, code or "", reason or ""], n)
    yield family
    yield _oldest(session, now, "applyq_parked_oldest_seconds", "Age of the oldest parked submission.", parked,
                  Submission.updated_at)  # fmt: skip


def due_backlog(session: Session, now: datetime) -> Iterator[Metric]:
    """``applyq_due_submissions{provider}`` and ``applyq_due_oldest_seconds{provider}``."""
    due = sa.and_(Submission.status.in_(_DUE), Submission.next_attempt_at <= now)
    family = GaugeMetricFamily("applyq_due_submissions", "Submissions due but not picked up yet.", labels=["provider"])
    for provider, n in session.execute(
        sa.select(Submission.provider, sa.func.count()).where(due).group_by(Submission.provider)
    ):
        family.add_metric([provider], n)
    yield family
    yield _oldest(session, now, "applyq_due_oldest_seconds", "How long the oldest due submission has waited.", due,
                  Submission.next_attempt_at)  # fmt: skip


def _oldest(
    session: Session, now: datetime, name: str, doc: str, where: sa.ColumnElement[bool], since: QueryableAttribute[Any]
) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=["provider"])
    query = sa.select(Submission.provider, sa.func.min(since)).where(where).group_by(Submission.provider)
    for provider, oldest in session.execute(query):
        if oldest is not None:
            family.add_metric([provider], max(0.0, (now - _aware(oldest)).total_seconds()))
    return family


def _aware(value: datetime) -> datetime:
    """A naive value (some drivers, for an aggregate) is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def attempt_outcomes(session: Session, now: datetime) -> Iterator[Metric]:
    """``applyq_attempt_outcomes_total{provider,decision,code}`` over every recorded attempt, pruned ones too."""
    family = CounterMetricFamily(
        "applyq_attempt_outcomes", "Attempts per provider, decision and code.", labels=["provider", "decision", "code"]
    )
    for count in counts(session, ATTEMPT):
        family.add_metric([count.provider, count.label, count.code], count.n)
    yield family


#: Every metric source; add one function here for a new metric (e.g. cooldowns).
SOURCES: tuple[Source, ...] = (submissions_by_status, parked_backlog, due_backlog, attempt_outcomes)


class ApplyqCollector(Collector):
    """Reads every source in one short read-only session per scrape."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], datetime], sources: Sequence[Source] = SOURCES
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._sources = tuple(sources)

    def collect(self) -> Iterable[Metric]:
        """All metric families, computed now."""
        now = self._clock()
        with self._sessions() as session:
            families = [family for source in self._sources for family in source(session, now)]
            session.rollback()
        return families


def build_registry(
    sessions: sessionmaker[Session], clock: Callable[[], datetime], extra: Sequence[Collector] = ()
) -> CollectorRegistry:
    """A registry holding applyq's collectors only (no process metrics: Flower has those)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (ApplyqCollector(sessions, clock), *extra):
        registry.register(collector)
    return registry


def serve_metrics(registry: CollectorRegistry, *, address: str, port: int) -> None:
    """Serve ``/metrics`` over HTTP until SIGINT/SIGTERM."""
    from prometheus_client import start_http_server  # local: only `applyq metrics` serves

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server, thread = start_http_server(port, address, registry=registry)
    try:
        stop.wait()
    finally:
        server.shutdown()
        thread.join(timeout=5)
