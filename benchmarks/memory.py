"""Memory with many submissions scheduled for later: applyq vs plain Celery countdown tasks, same run.

    python -m benchmarks.memory [--count 100000]

applyq keeps future work in the database: its worker and Redis stay flat. The naive peer schedules the
same number of tasks with ``countdown=3600``: every one is fetched into the worker's memory at once and
sits in Redis' unacked hash (celery#2218, kombu#337). Goals for applyq: worker RSS < 150 MB, Redis < 50 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from benchmarks.procstat import redis_used_mb, rss_mb
from benchmarks.stack import PG_ADMIN_URL, REDIS_URL
from worker.clock import utcnow
from worker.db.engine import migrate
from worker.db.models import Submission
from worker.db.submissions import provider_idempotency_key
from worker.local.processes import create_database, drop_database, spawn


def schedule_in_database(pg_url: str, count: int) -> None:
    """Insert ``count`` submissions waiting for a retry an hour from now (as after a long Retry-After)."""
    engine = sa.create_engine(pg_url)
    now = utcnow()
    later = now + timedelta(hours=1)
    candidate = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}
    with engine.begin() as conn:
        for start in range(0, count, 5000):
            rows = [_row(f"mem-{n}", now, later, candidate) for n in range(start, min(count, start + 5000))]
            conn.execute(sa.insert(Submission), rows)
    engine.dispose()


def _row(key: str, now: Any, later: Any, candidate: dict[str, str]) -> dict[str, Any]:
    payload = {"provider": "kombo", "integration_id": "x:1", "job_id": key, "idempotency_key": key,
               "candidate": candidate, "metadata": {}}  # fmt: skip
    return {
        "id": str(uuid.uuid4()), "idempotency_key": key, "payload_hash": "0" * 64,
        "provider_idempotency_key": provider_idempotency_key(key), "provider": "kombo", "integration_id": "x:1",
        "job_id": key, "payload": payload, "status": "retry_scheduled", "attempt_count": 1,
        "next_attempt_at": later, "created_at": now, "updated_at": now, "window_started_at": now,
        "window_attempt_base": 0,
    }  # fmt: skip


def measure_applyq(count: int, settle_s: float, workdir: Path) -> dict[str, float]:
    """Worker RSS and Redis memory with ``count`` submissions due in an hour."""
    pg_url = create_database(PG_ADMIN_URL, "applyq_bench")
    try:
        migrate(pg_url)
        schedule_in_database(pg_url, count)
        redis.Redis.from_url(REDIS_URL).flushdb()
        redis_before = redis_used_mb(REDIS_URL)
        env = {**os.environ, "APPLYQ_DATABASE_URL": pg_url, "APPLYQ_BROKER_URL": REDIS_URL,
               "APPLYQ_QUEUE": "bench-memory", "APPLYQ_LOG_LEVEL": "WARNING"}  # fmt: skip
        worker = spawn(["worker"], env, workdir / "applyq-worker.log")
        try:
            time.sleep(settle_s)
            return _reading(worker.popen.pid, redis_before, "bench-memory")
        finally:
            worker.stop()
    finally:
        drop_database(PG_ADMIN_URL, pg_url)


def measure_naive(count: int, settle_s: float, workdir: Path) -> dict[str, float]:
    """The same with plain Celery ``countdown=3600`` tasks."""
    from benchmarks.naive import app, noop

    redis.Redis.from_url(REDIS_URL).flushdb()
    redis_before = redis_used_mb(REDIS_URL)
    app.conf.broker_url = REDIS_URL
    with app.producer_or_acquire() as producer:
        for n in range(count):
            noop.apply_async(args=[f"mem-{n}"], countdown=3600, producer=producer)
    env = {**os.environ, "NAIVE_BROKER_URL": REDIS_URL}
    log = (workdir / "naive-worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "benchmarks.naive", "worker", "--pool=threads", "-c", "64",
         "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + max(settle_s, 600)
        while redis.Redis.from_url(REDIS_URL).llen("naive") and time.monotonic() < deadline:
            time.sleep(1)  # until the worker has pulled every ETA task into memory
        time.sleep(settle_s)
        return _reading(worker.pid, redis_before, "naive")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:  # Celery's warm shutdown can take minutes with 100,000 ETA tasks held
            worker.kill()
            worker.wait()
        redis.Redis.from_url(REDIS_URL).flushdb()


def _reading(pid: int, redis_before: float, queue: str) -> dict[str, float]:
    return {
        "worker_rss_mb": rss_mb(pid),
        "redis_used_mb": redis_used_mb(REDIS_URL),
        "redis_before_mb": redis_before,
        "queued_messages": redis.Redis.from_url(REDIS_URL).llen(queue),
    }


def main() -> int:
    """Run both, print a table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--settle-s", type=float, default=15.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="applyq-bench-"))
    results = {"count": args.count, "applyq": measure_applyq(args.count, args.settle_s, workdir)}
    if not args.skip_naive:
        results["naive_celery_countdown"] = measure_naive(args.count, args.settle_s, workdir)
    print(f"{args.count:,} submissions scheduled one hour ahead")
    print(f"{'':28}{'worker RSS MB':>15}{'Redis used MB':>15}{'in queue':>10}")
    for name in ("applyq", "naive_celery_countdown"):
        if name in results:
            r = results[name]
            print(f"{name:28}{r['worker_rss_mb']:>15}{r['redis_used_mb']:>15}{r['queued_messages']:>10}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
