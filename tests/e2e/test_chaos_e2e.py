"""CI's small chaos run; marked ``chaos`` so it runs last (it restarts PostgreSQL under everything else).

Its workers and submitter go through the suite's PgBouncer like every other e2e stack (unless
``APPLYQ_E2E_DATABASE=direct``): when PostgreSQL restarts, PgBouncer drops its server connections and opens new
ones, and applyq must ride through the errors its transactions get meanwhile as it does on a direct connection.
"""

from __future__ import annotations

import os
import shutil

import pytest
import redis
import sqlalchemy as sa

from benchmarks.chaos import PG_ADMIN_URL, REDIS_URL, ChaosConfig, run_chaos
from tests.conftest import IN_CI, require_service
from tests.e2e.conftest import E2E_DATABASE, PGBOUNCER_POOL

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


def may_restart_postgres() -> bool:
    """Only in CI (nothing else is using the server) and only where this user can."""
    return IN_CI and os.geteuid() == 0 and shutil.which("pg_ctlcluster") is not None


@pytest.mark.timeout(300)
def test_small_chaos_run_loses_and_duplicates_nothing() -> None:
    try:
        sa.create_engine(PG_ADMIN_URL).connect().close()
        redis.Redis.from_url(REDIS_URL).ping()
    except (sa.exc.OperationalError, redis.RedisError) as exc:
        require_service("PostgreSQL and Redis", str(exc).splitlines()[0])
    pgbouncer_port = None if E2E_DATABASE == "direct" else PGBOUNCER_POOL.start()
    cfg = ChaosConfig(
        submissions=240, kills=2, flushes=1, restart_postgres=may_restart_postgres(), submit_seconds=8,
        pgbouncer_port=pgbouncer_port,
    )  # fmt: skip
    report = run_chaos(cfg)
    print(report)
    assert report.submitted == 240
    assert (report.lost, report.created_twice, report.not_final) == (0, 0, 0)
    assert report.worker_kills == 2 and report.redis_flushes == 1
