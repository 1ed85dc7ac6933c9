"""CI's small benchmark run: the suite still works end to end and prints its table (timings are not asserted).

The benchmarks start their own stacks with their own settings, directly on PostgreSQL as ``make bench`` runs
them, not through the e2e suite's PgBouncer (their own PgBouncer case, ``pgbouncer``, is skipped here for time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from benchmarks.stack import PG_ADMIN_URL, REDIS_URL
from tests.conftest import require_service

pytestmark = pytest.mark.e2e

SMALL = ["--submissions", "300", "--rounds", "1", "--warmup", "20", "--calls", "100", "--cli-runs", "2",
         "--cli-batch", "50", "--memory-count", "2000", "--memory-settle-s", "1",
         "--skip", "traffic,sporadic,one_integration,pgbouncer"]  # fmt: skip


def test_a_small_benchmark_run_prints_the_table_and_writes_the_figures(tmp_path: Path) -> None:
    try:
        sa.create_engine(PG_ADMIN_URL).connect().close()
        redis.Redis.from_url(REDIS_URL).ping()
    except (sa.exc.OperationalError, redis.RedisError) as exc:
        require_service("PostgreSQL and Redis", str(exc).splitlines()[0])
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *SMALL, "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    for label in ("submissions/s", "applyq / baseline", "CPU per submission", "Python API", "worker RSS"):
        assert label in run.stdout
    figures = json.loads((tmp_path / "latest.json").read_text())
    throughput = figures["throughput"]["median"]
    assert sorted(throughput) == ["applyq", "naive", "noqueue"]
    for name in throughput:  # every contender delivered every submission, each created once
        assert (throughput[name]["submissions"], throughput[name]["created"]) == (300, 300)
    assert figures["latency"]["api"]["count"] == 100
