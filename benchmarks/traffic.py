"""Traffic control under a provider rate limit: applyq (configured, then adaptive) vs the naive Celery task.

    python -m benchmarks.traffic [--flooded 600] [--other 100] [--rate 20] [--latency-ms 50]

The sandbox allows ``--rate`` requests/s per integration (a token bucket holding one second's worth) and
answers 429 with ``Retry-After`` beyond it. One integration gets ``--flooded`` submissions, a second one
``--other``, all at once. For each contender the run prints: delivered, the share of calls answered 429,
the time to drain the flooded integration against the ideal ``flooded / rate``, and when the other
integration finished, as a fraction of the run.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import sqlalchemy as sa

from benchmarks.stack import PG_ADMIN_URL, REDIS_URL
from worker.clock import utcnow
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory, migrate
from worker.db.models import Submission
from worker.intake.enqueue import enqueue, validate_all
from worker.local.processes import create_database, drop_database, free_port, spawn, wait_http
from worker.runtime.tasks import CeleryPublisher, create_celery

FLOODED, OTHER = "greenhouse:bench-flooded", "lever:bench-other"


def forget_limits() -> None:
    """Start each contender cold: what the limiter learned in an earlier run lives on in Redis."""
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("applyq:lim:kombo:*bench-*"):
        client.delete(key)


@dataclass
class Figures:
    """One contender's result."""

    contender: str
    submitted: int
    delivered: int
    calls: int
    share_429: float
    drain_flooded_s: float
    drain_ratio_to_ideal: float
    other_done_s: float
    other_done_fraction_of_run: float


@dataclass(frozen=True)
class Setup:
    """The load and the provider's limit."""

    flooded: int = 600
    other: int = 100
    rate: float = 20.0
    latency_ms: float = 50.0
    timeout_s: float = 300.0

    @property
    def ideal_s(self) -> float:
        """The fastest the flooded integration can drain under the limit."""
        return self.flooded / self.rate


@contextmanager
def sandbox(setup: Setup, workdir: Path) -> Iterator[str]:
    """A rate-limited sandbox; yields its URL."""
    port = free_port()
    args = ["sandbox", "--port", str(port), "--latency-ms", str(setup.latency_ms), "--rate-limit", str(setup.rate)]
    proc = spawn(args, dict(os.environ), workdir / f"sandbox-{port}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/_sandbox/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def items(setup: Setup, run: str) -> list[dict[str, Any]]:
    """The flooded integration's submissions first, then the other's: the worst order for fairness."""
    plan = [(FLOODED, n) for n in range(setup.flooded)] + [(OTHER, n) for n in range(setup.other)]
    return [
        {
            "provider": "kombo",
            "integration_id": integration,
            "job_id": f"ok--{run}-{integration.split(':')[1]}-{n}",
            "idempotency_key": f"{run}-{integration}-{n}",
            "candidate": {"first_name": "Load", "last_name": f"Test{n}", "email": f"load{n}@example.com"},
        }
        for integration, n in plan
    ]


def run_applyq(setup: Setup, workdir: Path, rate_limits: str) -> Figures:
    """applyq with ``APPLYQ_RATE_LIMITS`` (empty = adaptive) against the rate-limited sandbox."""
    pg_url = create_database(PG_ADMIN_URL, "applyq_traffic")
    forget_limits()
    try:
        migrate(pg_url)
        with sandbox(setup, workdir) as url:
            queue = f"traffic-{uuid.uuid4().hex[:6]}"
            env = {
                **os.environ,
                "APPLYQ_DATABASE_URL": pg_url,
                "APPLYQ_BROKER_URL": REDIS_URL,
                "APPLYQ_QUEUE": queue,
                "APPLYQ_KOMBO_BASE_URL": url,
                "APPLYQ_KOMBO_API_KEY": "sandbox-kombo-key",
                "APPLYQ_RATE_LIMITS": rate_limits,
                "APPLYQ_LOG_LEVEL": "WARNING",
                "APPLYQ_HTTP_TIMEOUT_S": "10",
            }
            worker = spawn(["worker"], env, workdir / f"worker-{queue}.log")
            try:
                return _drive(setup, pg_url, queue, url, "applyq " + ("configured" if rate_limits else "adaptive"))
            finally:
                worker.stop()
    finally:
        drop_database(PG_ADMIN_URL, pg_url)


def _drive(setup: Setup, pg_url: str, queue: str, sandbox_url: str, name: str) -> Figures:
    sessions = create_session_factory(create_engine(pg_url, pool_size=2))
    settings = Settings(database_url=pg_url, broker_url=REDIS_URL, queue=queue)
    publisher = CeleryPublisher(create_celery(settings, REDIS_URL))
    warm_up(sessions, publisher)
    httpx.post(f"{sandbox_url}/_sandbox/reset")
    started = utcnow()
    stored = enqueue(sessions, publisher, validate_all(items(setup, uuid.uuid4().hex[:6])), started)
    ids = [s.submission.id for s in stored]
    wait_final(sessions, ids, setup.timeout_s)
    with sessions() as session:
        rows = session.execute(
            sa.select(Submission.integration_id, Submission.status, Submission.finished_at).where(
                Submission.id.in_(ids)
            )
        ).all()
    done = {
        integration: max(
            ((r.finished_at or utcnow()) - started).total_seconds() for r in rows if r.integration_id == integration
        )
        for integration in (FLOODED, OTHER)
    }
    delivered = sum(1 for r in rows if r.status == "succeeded")
    return _figures(name, setup, delivered, done[FLOODED], done[OTHER], sandbox_url)


def warm_up(sessions: Any, publisher: CeleryPublisher) -> None:
    """One submission through, so the worker is consuming before the clock starts."""
    warm = validate_all(
        [
            {
                "provider": "kombo",
                "integration_id": "warm:up",
                "job_id": f"ok--warm-{uuid.uuid4().hex[:6]}",
                "idempotency_key": f"warm-{uuid.uuid4().hex}",
                "candidate": {"first_name": "W", "last_name": "U", "email": "warm@example.com"},
            }
        ]
    )
    [stored] = enqueue(sessions, publisher, warm, utcnow())
    wait_final(sessions, [stored.submission.id], 60)


def wait_final(sessions: Any, ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    final = ("succeeded", "parked", "terminal", "cancelled")
    while time.monotonic() < deadline:
        with sessions() as session:
            waiting = session.scalar(
                sa.select(sa.func.count()).where(Submission.id.in_(ids), Submission.status.not_in(final))
            )
        if not waiting:
            return
        time.sleep(0.25)


def _figures(name: str, setup: Setup, delivered: int, flooded_s: float, other_s: float, sandbox_url: str) -> Figures:
    stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    calls = int(stats["requests"])
    limited = int(stats["by_status"].get("429", 0))
    return Figures(
        contender=name,
        submitted=setup.flooded + setup.other,
        delivered=delivered,
        calls=calls,
        share_429=round(limited / calls, 4) if calls else 0.0,
        drain_flooded_s=round(flooded_s, 1),
        drain_ratio_to_ideal=round(flooded_s / setup.ideal_s, 3),
        other_done_s=round(other_s, 1),
        other_done_fraction_of_run=round(other_s / max(flooded_s, other_s), 3),
    )


def run_naive(setup: Setup, workdir: Path) -> Figures:
    """The naive Celery task (autoretry, backoff, jitter, max_retries=5) against the same sandbox."""
    from benchmarks import naive

    pg_url = create_database(PG_ADMIN_URL, "applyq_naive")
    naive.create_tables(pg_url)
    try:
        with sandbox(setup, workdir) as url:
            queue = f"naive-traffic-{uuid.uuid4().hex[:6]}"
            env = {**os.environ, "NAIVE_BROKER_URL": REDIS_URL, "NAIVE_QUEUE": queue, "NAIVE_KOMBO_URL": url,
                   "NAIVE_DATABASE_URL": pg_url}  # fmt: skip
            log = (workdir / f"naive-{queue}.log").open("wb")
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "benchmarks.naive", "worker", "--pool=threads", "-c", "64",
                 "--loglevel=WARNING", "--without-gossip", "--without-mingle"], env=env, stdout=log, stderr=log,
            )  # fmt: skip
            try:
                time.sleep(3)  # let it connect
                httpx.post(f"{url}/_sandbox/reset")
                started = time.monotonic()
                naive.app.conf.broker_url = REDIS_URL
                with naive.app.producer_or_acquire() as producer:
                    for item in items(setup, uuid.uuid4().hex[:6]):
                        naive.deliver.apply_async(args=[item], queue=queue, producer=producer)
                flooded_s, other_s = _naive_drain(setup, url, started)
                delivered = sum(a["creations"] for a in httpx.get(f"{url}/_sandbox/applications").json())
                return _figures("naive Celery task", setup, delivered, flooded_s, other_s, url)
            finally:
                worker.terminate()
                worker.wait(timeout=60)
    finally:
        drop_database(PG_ADMIN_URL, pg_url)


def _naive_drain(setup: Setup, url: str, started: float) -> tuple[float, float]:
    """Wait until the sandbox has seen no request for 15 s (the naive task has no final state)."""
    quiet_since, seen = time.monotonic(), -1
    while time.monotonic() - quiet_since < 15 and time.monotonic() - started < setup.timeout_s:
        requests = int(httpx.get(f"{url}/_sandbox/stats").json()["requests"])
        if requests != seen:
            seen, quiet_since = requests, time.monotonic()
        time.sleep(0.5)
    return _finish_times(url, started)


def _finish_times(url: str, started: float) -> tuple[float, float]:
    """The time of the last successful request per integration, from the sandbox's request log."""
    done = {FLOODED: 0.0, OTHER: 0.0}
    wall_start = time.time() - (time.monotonic() - started)
    for record in httpx.get(f"{url}/_sandbox/requests").json():
        integration = record["headers"].get("x-integration-id")
        if integration in done and record["status"] == 200:
            done[integration] = max(done[integration], record["received_at"] - wall_start)
    return done[FLOODED], done[OTHER]


def main() -> int:
    """Run the three contenders and print one table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flooded", type=int, default=600)
    parser.add_argument("--other", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    setup = Setup(args.flooded, args.other, args.rate, args.latency_ms)
    workdir = Path(tempfile.mkdtemp(prefix="applyq-traffic-"))
    limits = json.dumps({"kombo:*": f"{setup.rate:g}/s"})
    results = [run_applyq(setup, workdir, limits), run_applyq(setup, workdir, "")]
    if not args.skip_naive:
        results.append(run_naive(setup, workdir))
    print_table(setup, results)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


def print_table(setup: Setup, results: list[Figures]) -> None:
    """The figures side by side."""
    print(f"{setup.flooded} + {setup.other} submissions, limit {setup.rate:g}/s per integration, "
          f"{setup.latency_ms:g} ms latency; ideal drain {setup.ideal_s:g} s")  # fmt: skip
    header = (
        f"{'contender':22}{'delivered':>10}{'calls':>7}{'429 share':>10}{'drain s':>9}{'x ideal':>9}{'other done':>12}"
    )
    print(header)
    for r in results:
        print(f"{r.contender:22}{r.delivered:>10}{r.calls:>7}{r.share_429:>10.1%}{r.drain_flooded_s:>9}"
              f"{r.drain_ratio_to_ideal:>9}{r.other_done_fraction_of_run:>12.0%}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
