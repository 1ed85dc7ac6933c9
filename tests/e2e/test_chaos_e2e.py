"""CI's small chaos run; marked ``chaos`` so it runs last (it restarts PostgreSQL under everything else)."""

from __future__ import annotations

import os
import shutil

import pytest
import redis
import sqlalchemy as sa

from benchmarks.chaos import PG_ADMIN_URL, REDIS_URL, ChaosConfig, run_chaos
from tests.conftest import IN_CI, require_service

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
    cfg = ChaosConfig(submissions=240, kills=2, flushes=1, restart_postgres=may_restart_postgres(), submit_seconds=8)
    report = run_chaos(cfg)
    print(report)
    assert report.submitted == 240
    assert (report.lost, report.created_twice, report.not_final) == (0, 0, 0)
    assert report.worker_kills == 2 and report.redis_flushes == 1
