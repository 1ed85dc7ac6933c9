"""``make bench-scale`` on a small history, so the benchmark cannot rot (its timings are not judged here).

Directly on PostgreSQL, never through the suite's PgBouncer: the benchmark measures queries against PostgreSQL
with its own settings, as ``make bench-scale`` runs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from benchmarks.scale import TARGETS, fill, render, run_scale
from tests.conftest import require_service
from tests.e2e.conftest import fresh_database
from worker.db.engine import create_engine, create_session_factory
from worker.db.tally import ATTEMPT, ENDED, counts

pytestmark = pytest.mark.e2e


@pytest.fixture
def scratch_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def test_the_fill_goes_through_the_triggers_so_the_tallies_count_every_row(scratch_url: str) -> None:
    fill(scratch_url, 300, parked=5)
    engine = create_engine(scratch_url, pool_size=1)
    try:
        with create_session_factory(engine)() as session:
            attempts = sum(c.n for c in counts(session, ATTEMPT))
            ended = sum(c.n for c in counts(session, ENDED))
            stored = session.scalar(sa.text("SELECT count(*) FROM applyq_attempt"))
    finally:
        engine.dispose()
    assert (attempts, stored, ended) == (2 * 300, 2 * 300, 300)  # the parked ones have no attempts


@pytest.mark.timeout(600)
def test_the_scale_benchmark_runs_on_a_small_history() -> None:
    try:
        result = run_scale(300, repeat=1, enqueue_calls=10)
    except sa.exc.OperationalError as exc:
        require_service("PostgreSQL", str(exc).splitlines()[0])
    assert [row.name for row in result["rows"]] == list(TARGETS)
    assert all(row.empty_s > 0 and row.full_s > 0 for row in result["rows"])
    assert "| applyq stats |" in render(result)
