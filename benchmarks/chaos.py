"""Chaos run: thousands of submissions while workers are SIGKILLed, Redis is flushed and PostgreSQL restarts.

    python -m benchmarks.chaos                      # the full run (2,000 submissions), also `make chaos`
    python -m benchmarks.chaos --submissions 200    # CI's small version (tests/e2e/test_zz_chaos_e2e.py)

Every submission is scripted to succeed eventually (some after rate limits, outages and hangs past the
client timeout), so at the end: lost = submissions not succeeded, plus successes the provider never saw,
plus applications at the provider whose submission is not succeeded; created twice = applications the
sandbox created more than once. Both must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import redis
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from benchmarks.stack import PG_ADMIN_URL
from worker.clock import utcnow
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory, migrate
from worker.db.models import Submission
from worker.intake.enqueue import enqueue, validate_all
from worker.local.pgbouncer import pooled_url
from worker.local.processes import Proc, create_database, drop_database, free_port, spawn, wait_http
from worker.local.sandbox.config import SandboxConfig
from worker.runtime.tasks import CeleryPublisher, create_celery

REDIS_URL = os.environ.get("APPLYQ_CHAOS_REDIS_URL", "redis://127.0.0.1:6379/14")
SANDBOX_KEYS = {
    "APPLYQ_KOMBO_API_KEY": SandboxConfig.kombo_api_key,
    "APPLYQ_STACKONE_API_KEY": SandboxConfig.stackone_api_key,
    "APPLYQ_CELPER_API_KEY": SandboxConfig.celper_api_key,
}
WORKER_ENV = {
    **SANDBOX_KEYS,
    "APPLYQ_HTTP_TIMEOUT_S": "1",
    "APPLYQ_LEASE_MARGIN_S": "2",
    "APPLYQ_BACKOFF_BASE_S": "0.2",
    "APPLYQ_BACKOFF_MAX_S": "2",
    "APPLYQ_MAX_ATTEMPTS": "12",
    "APPLYQ_REPUBLISH_AFTER_S": "5",
    "APPLYQ_DISPATCH_INTERVAL_S": "0.1",
    "APPLYQ_WORKER_CONCURRENCY": "16",
    "APPLYQ_LOG_LEVEL": "WARNING",
    # the sandbox is not bound by Celper's production 20 writes a minute
    "APPLYQ_RATE_LIMITS": '{"celper:*": "200/s"}',
}
#: Sandbox scenario → share of submissions; every one ends in success.
MIX = {"ok": 0.70, "ratelimit1": 0.10, "unavailable1": 0.08, "hang1": 0.06, "lb503x1": 0.06}


@dataclass
class ChaosConfig:
    """What to submit and what to break."""

    submissions: int = 2000
    providers: tuple[str, ...] = ("kombo", "stackone", "celper")
    kills: int = 2
    flushes: int = 1
    restart_postgres: bool = True
    latency_ms: float = 20.0
    submit_seconds: float = 10.0
    timeout_s: float = 600.0
    seed: int = 7
    #: a PgBouncer in transaction mode (``worker/local/pgbouncer.py``) that the workers and the submitter reach
    #: PostgreSQL through, with ``APPLYQ_DATABASE_POOLER=transaction``; None: directly. The run's own
    #: checks read PostgreSQL directly either way.
    pgbouncer_port: int | None = None


@dataclass
class ChaosReport:
    """The figures the run prints."""

    submitted: int = 0
    final: int = 0
    succeeded: int = 0
    reconciled: int = 0
    not_final: int = 0
    lost: int = 0
    created_twice: int = 0
    worker_kills: int = 0
    redis_flushes: int = 0
    postgres_restarts: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated, everything final."""
        return self.lost == 0 and self.created_twice == 0 and self.not_final == 0


def build_items(cfg: ChaosConfig, run: str) -> list[dict[str, Any]]:
    """The submissions, spread over the providers and the scenario mix."""
    rng = random.Random(cfg.seed)
    scenarios = rng.choices(list(MIX), weights=list(MIX.values()), k=cfg.submissions)
    items = []
    for n, scenario in enumerate(scenarios):
        provider = cfg.providers[n % len(cfg.providers)]
        items.append(
            {
                "provider": provider,
                "integration_id": None if provider == "celper" else f"greenhouse:chaos-{n % 5}",
                "job_id": f"{scenario}--chaos-{run}-{n}",
                "idempotency_key": f"chaos-{run}-{n}",
                "candidate": {"first_name": "Chaos", "last_name": f"Monkey{n}", "email": f"c{n}@example.com"},
            }
        )
    return items


class Chaos:
    """One chaos run: its processes, the submitter and the disruptions."""

    def __init__(self, cfg: ChaosConfig, workdir: Path) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.report = ChaosReport()
        self.procs: list[Proc] = []
        self.pg_url = create_database(PG_ADMIN_URL, "applyq_chaos")
        migrate(self.pg_url)
        #: where applyq itself (the workers, the submitter) connects, and through what
        self.applyq_url = self.pg_url if cfg.pgbouncer_port is None else pooled_url(self.pg_url, cfg.pgbouncer_port)
        self.pooler: Literal["none", "transaction"] = "none" if cfg.pgbouncer_port is None else "transaction"
        port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            **WORKER_ENV,
            "APPLYQ_DATABASE_URL": self.applyq_url,
            "APPLYQ_DATABASE_POOLER": self.pooler,
            "APPLYQ_BROKER_URL": REDIS_URL,
            "APPLYQ_QUEUE": f"applyq-chaos-{uuid.uuid4().hex[:6]}",
            "APPLYQ_KOMBO_BASE_URL": self.sandbox_url,
            "APPLYQ_STACKONE_BASE_URL": self.sandbox_url,
            "APPLYQ_CELPER_BASE_URL": f"{self.sandbox_url}/v1",
        }
        self.settings = Settings(
            broker_url=REDIS_URL, queue=self.env["APPLYQ_QUEUE"], database_url=self.applyq_url,
            database_pooler=self.pooler,
        )  # fmt: skip
        sandbox_args = ["--port", str(port), "--latency-ms", str(cfg.latency_ms), "--hang-s", "3",
                        "--celper-rate-limit", "1000000"]  # fmt: skip
        self.procs.append(spawn(["sandbox", *sandbox_args], self.env, workdir / "sandbox.log"))
        wait_http(f"{self.sandbox_url}/_sandbox/health")
        self.worker = self._start_worker()

    def _start_worker(self) -> Proc:
        proc = spawn(
            ["worker", "--hostname", f"chaos-{uuid.uuid4().hex[:6]}@%h"], self.env, self.workdir / "worker.log"
        )
        self.procs.append(proc)
        return proc

    def run(self) -> ChaosReport:
        """Submit while disrupting, wait for every submission to be final, then count."""
        started = time.monotonic()
        ids: list[str] = []
        submitter = threading.Thread(target=self._submit_all, args=(ids,), name="submitter")
        submitter.start()
        self._disrupt(started)
        submitter.join()
        self.report.submitted = len(ids)
        self._wait_final(ids, started)
        self.report.seconds = round(time.monotonic() - started, 1)
        self._count(ids)
        return self.report

    def _submit_all(self, ids: list[str]) -> None:
        sessions = create_session_factory(create_engine(self.applyq_url, pool_size=2, pooler=self.pooler))
        publisher = CeleryPublisher(create_celery(self.settings, REDIS_URL))
        items = validate_all(build_items(self.cfg, uuid.uuid4().hex[:6]))
        batches = [items[i : i + 50] for i in range(0, len(items), 50)]
        pause = self.cfg.submit_seconds / max(1, len(batches))
        for batch in batches:
            while True:  # the job board retries; the idempotency key makes that safe
                try:
                    ids.extend(s.submission.id for s in enqueue(sessions, publisher, batch, utcnow()))
                    break
                except SQLAlchemyError:
                    time.sleep(0.5)
            time.sleep(pause)

    def _disrupt(self, started: float) -> None:
        events = ["kill"] * self.cfg.kills + ["flush"] * self.cfg.flushes
        if self.cfg.restart_postgres:
            events.insert(len(events) // 2, "restart_postgres")
        step = self.cfg.submit_seconds / (len(events) + 1)
        for n, event in enumerate(events, start=1):
            time.sleep(max(0.0, started + n * step - time.monotonic()))
            getattr(self, f"_{event}")()

    def _kill(self) -> None:
        os.kill(self.worker.popen.pid, signal.SIGKILL)
        self.worker.popen.wait()
        self.report.worker_kills += 1
        time.sleep(1.0)  # an orchestrator restarts it
        self.worker = self._start_worker()

    def _flush(self) -> None:
        redis.Redis.from_url(REDIS_URL).flushdb()
        self.report.redis_flushes += 1

    def _restart_postgres(self) -> None:
        clusters = sorted(os.listdir("/etc/postgresql"))
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "restart"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.report.postgres_restarts += 1

    def _wait_final(self, ids: list[str], started: float) -> None:
        engine = create_engine(self.pg_url, pool_size=1)
        final = ("succeeded", "parked", "terminal", "cancelled")
        while time.monotonic() - started < self.cfg.timeout_s:
            try:
                with engine.connect() as conn:
                    waiting = conn.scalar(
                        sa.select(sa.func.count()).select_from(Submission).where(Submission.status.not_in(final))
                    )
                if waiting == 0:
                    break
            except SQLAlchemyError:
                pass
            time.sleep(0.5)
        engine.dispose()

    def _count(self, ids: list[str]) -> None:
        engine = create_engine(self.pg_url, pool_size=1)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(Submission.job_id, Submission.status, Submission.outcome_reason)).all()
        engine.dispose()
        statuses = Counter(r.status for r in rows)
        succeeded_jobs = {r.job_id for r in rows if r.status == "succeeded"}
        held = httpx.get(f"{self.sandbox_url}/_sandbox/applications", timeout=30).json()
        held_jobs = {a["job_id"] for a in held}
        report = self.report
        report.statuses = dict(statuses)
        report.final = sum(n for s, n in statuses.items() if s in ("succeeded", "parked", "terminal", "cancelled"))
        report.succeeded = statuses["succeeded"]
        report.reconciled = sum(1 for r in rows if r.outcome_reason == "reconciled")
        report.not_final = len(rows) - report.final
        missing_rows = len(ids) - len(rows)
        report.lost = (len(rows) - report.succeeded) + missing_rows + len(succeeded_jobs ^ held_jobs)
        report.created_twice = sum(1 for a in held if a["creations"] > 1)

    def close(self) -> None:
        """Stop every process and drop the database."""
        for proc in reversed(self.procs):
            proc.stop()
        drop_database(PG_ADMIN_URL, self.pg_url)


def run_chaos(cfg: ChaosConfig) -> ChaosReport:
    """One complete chaos run in a scratch directory."""
    workdir = Path(tempfile.mkdtemp(prefix="applyq-chaos-"))
    chaos = Chaos(cfg, workdir)
    try:
        return chaos.run()
    finally:
        chaos.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    """Parse arguments, run, print the figures (a table and JSON); exit 1 if anything was lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--flushes", type=int, default=1)
    parser.add_argument("--no-restart-postgres", action="store_true")
    parser.add_argument("--providers", default="kombo,stackone,celper")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    cfg = ChaosConfig(
        submissions=args.submissions,
        kills=args.kills,
        flushes=args.flushes,
        restart_postgres=not args.no_restart_postgres,
        providers=tuple(args.providers.split(",")),
    )
    report = run_chaos(cfg)
    figures = {**asdict(report), "ok": report.ok}
    for name, value in figures.items():
        print(f"{name:32} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
