"""``applyq stats`` on SQLite: counts from the tallies and the live rows, timings over the latest final states."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW
from tests.unit.admin.helpers import make
from worker.admin.stats import stats
from worker.db.models import Submission
from worker.db.submissions import requeued
from worker.db.tally import fold

COUNTS = ("total", "by_status", "by_provider", "by_code", "by_integration")


def counted(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in COUNTS}


def test_stats_count_and_time_to_final_state(sessions: sessionmaker[Session]) -> None:
    for seconds in (1, 2, 3, 4, 100):
        make(sessions, "succeeded", code=None, reason="created", age_s=seconds)
    make(sessions, "parked", age_s=50, attempts=3, integration_id="g:2")
    make(sessions, "queued", attempts=0, code=None, reason=None)
    with sessions() as session:
        data = stats(session)
    assert data["total"] == 7
    assert data["by_status"] == {"succeeded": 5, "parked": 1, "queued": 1}
    assert data["by_provider"] == {"kombo": {"succeeded": 5, "parked": 1, "queued": 1, "total": 7}}
    assert data["by_code"] == {"REMOTE.INPUT_INVALID": {"parked": 1, "total": 1}}
    assert data["by_integration"]["g:2"] == {"parked": 1, "total": 1}
    # the timings are of the final ones (the queued one has not reached a final state)
    assert data["latest_final"] == {"limit": 10_000, "count": 6, "oldest_finished_at": "2026-11-22T12:00:01+00:00"}
    assert data["attempts"] == {"mean": 1.33, "p50": 1.0, "p95": 3.0, "max": 3.0}
    assert data["time_to_final_s"]["succeeded"] == {"count": 5, "p50": 3.0, "p95": 100.0}
    assert data["time_to_final_s"]["all"] == {"count": 6, "p50": 3.0, "p95": 100.0}
    assert data["time_to_final_s"]["terminal"] == {"count": 0, "p50": None, "p95": None}
    with sessions() as session:
        assert stats(session, since=NOW + timedelta(days=1))["total"] == 0


def test_the_tallied_counts_agree_with_the_rows_through_folds_and_changes(sessions: sessionmaker[Session]) -> None:
    # Given ended submissions of several codes and integrations, and a live backlog
    done = [make(sessions, "succeeded", code=None, reason="created", integration_id=f"g:{n % 2}") for n in range(4)]
    rejected = make(sessions, "terminal", code="REMOTE.REJECTED", reason="rejected", integration_id="g:1")
    make(sessions, "cancelled", code=None, reason="cancelled", provider="celper", integration_id=None)
    make(sessions, "parked", integration_id="g:1")
    make(sessions, "retry_scheduled", code="PLATFORM.RATE_LIMIT_EXCEEDED", reason="rate_limited")

    def both() -> tuple[dict[str, Any], dict[str, Any]]:
        """The counts from the tallies, and the same counted from every row (``since`` before them all)."""
        with sessions() as session:
            return counted(stats(session)), counted(stats(session, since=NOW - timedelta(days=1)))

    tallied, from_rows = both()
    assert tallied == from_rows
    assert tallied["by_code"]["REMOTE.REJECTED"] == {"terminal": 1, "total": 1}
    assert tallied["by_integration"]["-"] == {"cancelled": 1, "total": 1}
    # When the deltas are folded, an ended one is requeued, and another's integration and code change
    with sessions() as session:
        fold(session)
        session.execute(sa.update(Submission).where(Submission.id == done[0]).values(requeued(NOW)))
        session.execute(sa.update(Submission).where(Submission.id == rejected)
                        .values(integration_id="g:9", outcome_code="REMOTE.JOB_CLOSED"))  # fmt: skip
        session.commit()
    # Then the tallies still say what the rows say
    tallied, from_rows = both()
    assert tallied == from_rows
    assert tallied["by_integration"]["g:9"] == {"terminal": 1, "total": 1}
    assert "REMOTE.REJECTED" not in tallied["by_code"]


def test_timings_are_over_the_latest_to_reach_a_final_state(sessions: sessionmaker[Session]) -> None:
    for seconds in (10, 20, 30, 40):
        make(sessions, "succeeded", code=None, reason="created", age_s=seconds, attempts=int(seconds / 10))
    make(sessions, "succeeded", code=None, reason="created", created=NOW + timedelta(hours=1), age_s=5)
    with sessions() as session:
        latest = stats(session, latest=2)
        recent = stats(session, since=NOW + timedelta(minutes=30))
    # the two that finished last: 40 s after NOW, and the one created an hour later
    assert latest["latest_final"] == {"limit": 2, "count": 2, "oldest_finished_at": "2026-11-22T12:00:40+00:00"}
    assert latest["total"] == 5  # the counts are of every submission
    assert latest["attempts"] == {"mean": 2.5, "p50": 1.0, "p95": 4.0, "max": 4.0}
    assert latest["time_to_final_s"]["all"] == {"count": 2, "p50": 5.0, "p95": 40.0}
    # with --since, both are of the submissions created since then
    assert (recent["total"], recent["latest_final"]["count"]) == (1, 1)
    assert recent["time_to_final_s"]["all"] == {"count": 1, "p50": 5.0, "p95": 5.0}


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [([7], (7.0, 7.0)), ([1, 2, 3, 4], (2.0, 4.0)), (list(range(1, 21)), (10.0, 19.0))],
)
def test_percentiles_are_the_nearest_rank_computed_in_the_database(
    sessions: sessionmaker[Session], attempts: list[int], expected: tuple[float, float]
) -> None:
    for n in attempts:
        make(sessions, "succeeded", code=None, reason="created", attempts=n, age_s=float(n))
    with sessions() as session:
        data = stats(session)
    assert (data["attempts"]["p50"], data["attempts"]["p95"]) == expected
    assert (data["time_to_final_s"]["all"]["p50"], data["time_to_final_s"]["all"]["p95"]) == expected
