"""Throughput on one host: applyq beside the naive Celery task and the no-queue limit, in the same run.

    python -m benchmarks.throughput [--submissions 3000] [--latency-ms 100] [--threads 64]

Every contender delivers the same Kombo submissions to the sandbox (each answers 200 after the latency)
and records every attempt in PostgreSQL, each in a scratch database of its own:

* **applyq**: ``applyq worker`` started as a user would (``APPLYQ_WORKER_CONCURRENCY`` = threads), with
  traffic control on and ``APPLYQ_RATE_LIMITS={"kombo:*": "10000/s"}`` over 30 integrations (this measures
  the queue), or with ``--defaults`` on Kombo's defaults (an adaptive rate, 30 in flight per integration:
  with ``--integrations 1`` the case of one big employer's burst); ``--processes N`` starts N workers;
  ``--pooler`` puts a PgBouncer in transaction mode between them and PostgreSQL (``APPLYQ_DATABASE_POOLER``),
  as a deployment of many worker processes runs it (the benchmark's own reads go direct);
* **naive Celery**: ``celery -A benchmarks.naive worker --pool threads -c THREADS`` (``acks_late``, Celery's
  default prefetch, ``--loglevel=WARNING``: quieter than applyq's one INFO line per attempt, a stricter baseline);
* **no-queue limit**: a thread pool in this process doing the same HTTP call and database write, no broker,
  with at most Kombo's 30 requests in flight per integration (Kombo refuses the 31st with a 429 since
  2026-03-20, and so does the sandbox: a loop past the cap would measure refusals, not a limit).

The naive task keeps no such count: its threads past 30 on one integration get Kombo's 429s and Celery's retries.

A warm-up batch goes first; then the measured batch is stored (applyq) and published at once. Submissions/s
is the batch size over the time from the first publish to the last recorded attempt; CPU is the worker
process's user+system seconds over the batch. applyq's workers' logs are read for the turns deferred during
the batch and for every task failure since they started (a pooler that loses a statement shows there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import redis
import sqlalchemy as sa

from benchmarks import naive
from benchmarks.procstat import cpu_seconds
from benchmarks.stack import (
    KOMBO_KEY,
    PG_ADMIN_URL,
    REDIS_URL,
    PeakRss,
    kombo_items,
    reset_sandbox,
    sandbox,
    sandbox_stats,
    scratch_database,
    wait_until,
)
from worker.clock import utcnow
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory, migrate
from worker.db.models import Attempt, Submission
from worker.db.submissions import add_submissions
from worker.intake.enqueue import validate_all
from worker.local.pgbouncer import pooled_url, run_pgbouncer
from worker.local.processes import spawn
from worker.local.sandbox.kombo import CONCURRENCY_LIMIT
from worker.runtime.tasks import CeleryPublisher, create_celery

CONTENDERS = ("applyq", "naive", "noqueue")
#: publishes a staged batch; returns when publishing started
Go = Callable[[], datetime]


@dataclass(frozen=True)
class ThroughputConfig:
    """How much to send and how."""

    submissions: int = 3000
    latency_ms: float = 100.0
    threads: int = 64
    warmup: int = 100
    integrations: int = 30
    timeout_s: float = 600.0
    contenders: tuple[str, ...] = CONTENDERS
    #: extra ``APPLYQ_*`` variables for the applyq worker (experiments)
    applyq_env: dict[str, str] = field(default_factory=dict)
    #: applyq on its defaults: no ``APPLYQ_RATE_LIMITS`` (Kombo's adaptive rate and its 30 in flight)
    defaults: bool = False
    #: worker processes of ``threads`` threads each (applyq and the naive task alike)
    processes: int = 1
    #: applyq's workers reach PostgreSQL through a PgBouncer in transaction mode (``worker/local/pgbouncer.py``)
    pooler: bool = False
    #: that PgBouncer's ``default_pool_size``: server connections for all the workers together
    pooler_pool_size: int = 20


@dataclass(frozen=True)
class Figures:
    """One contender's result."""

    submissions: int
    seconds: float
    per_s: float
    cpu_ms_per_submission: float
    peak_rss_mb: float | None
    #: applications the sandbox created during the batch (a check: equals ``submissions``; reads such as Kombo's
    #: pre-flight are not creations)
    created: int
    #: applyq only: turns its limits put back in the database instead of sending (``submission deferred`` lines)
    deferrals: int | None = None
    #: applyq only: log lines of a task that raised or of a lost prepared statement, warm-up included
    task_failures: int | None = None


@dataclass(frozen=True)
class LogCounts:
    """What applyq's workers' logs hold so far."""

    deferrals: int
    task_failures: int


def _figures(
    count: int,
    t0: datetime,
    t1: datetime,
    cpu_s: float,
    rss: float | None,
    url: str,
    deferrals: int | None = None,
    task_failures: int | None = None,
) -> Figures:
    seconds = (t1 - t0).total_seconds()
    ok = int(sandbox_stats(url)["created"])
    per_s, cpu_ms = round(count / seconds, 1), round(cpu_s / count * 1000, 2)
    return Figures(count, round(seconds, 2), per_s, cpu_ms, rss, ok, deferrals, task_failures)


def _log_counts(logs: list[Path]) -> LogCounts:
    """The ``submission deferred`` lines and the failure lines in the workers' logs (one JSON record a line).

    A failure is Celery's ``Task applyq.submit[…] raised …`` (a turn's exception escaped the task) or any line
    naming a ``prepared statement`` (psycopg's error when a pooler hands a transaction another server
    connection than the one that prepared it); a line that is both counts once.
    """
    deferrals = failures = 0
    for log in logs:
        with log.open("rb") as handle:
            for line in handle:
                deferrals += line.count(b'"submission deferred"')
                failures += _is_failure(line)
    return LogCounts(deferrals, failures)


def _is_failure(line: bytes) -> bool:
    raised = b"Task applyq.submit[" in line and b"raised" in line
    return raised or b"prepared statement" in line


def _count(engine: sa.Engine, query: sa.Select[Any]) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


# --- applyq ---------------------------------------------------------------------------------------------


def run_applyq(cfg: ThroughputConfig, sandbox_url: str, workdir: Path) -> Figures:
    """``applyq worker`` as a user starts it; the batch is stored, then published in one go."""
    tag = uuid.uuid4().hex[:6]
    with scratch_database() as url, _workers_database(cfg, url, workdir / f"pgbouncer-{tag}.log") as workers_env:
        migrate(url)
        settings = Settings(database_url=url, broker_url=REDIS_URL, queue=f"bench-applyq-{tag}")
        env = {
            **os.environ, "APPLYQ_DATABASE_URL": url, "APPLYQ_BROKER_URL": REDIS_URL, "APPLYQ_QUEUE": settings.queue,
            "APPLYQ_KOMBO_BASE_URL": sandbox_url, "APPLYQ_KOMBO_API_KEY": KOMBO_KEY,
            "APPLYQ_RATE_LIMITS": "{}" if cfg.defaults else json.dumps({"kombo:*": "10000/s"}),
            "APPLYQ_WORKER_CONCURRENCY": str(cfg.threads), **workers_env, **cfg.applyq_env,
        }  # fmt: skip
        logs = [workdir / f"applyq-worker-{tag}-{n}.log" for n in range(cfg.processes)]
        workers = [spawn(["worker", "--hostname", f"bench-{tag}-{n}@%h"], env, log) for n, log in enumerate(logs)]
        engine = create_engine(url, pool_size=2)
        publisher = CeleryPublisher(create_celery(settings, REDIS_URL))
        try:
            stage = partial(_applyq_stage, create_session_factory(engine), publisher)
            done = partial(_applyq_final, engine)
            last = lambda: _applyq_last(engine)  # noqa: E731
            pids = [w.popen.pid for w in workers]
            return _measure(cfg, sandbox_url, tag, pids, stage, done, last, partial(_log_counts, logs))
        finally:
            for worker in workers:
                worker.stop()
            engine.dispose()
            redis.Redis.from_url(REDIS_URL).delete(settings.queue)


@contextlib.contextmanager
def _workers_database(cfg: ThroughputConfig, url: str, log: Path) -> Iterator[dict[str, str]]:
    """The workers' database settings: none to add (direct), or a PgBouncer in transaction mode for them."""
    if not cfg.pooler:
        yield {}
        return
    with run_pgbouncer(PG_ADMIN_URL, pool_size=cfg.pooler_pool_size, log=log) as port:
        yield {"APPLYQ_DATABASE_URL": pooled_url(url, port), "APPLYQ_DATABASE_POOLER": "transaction"}


def _applyq_stage(sessions: Any, publisher: CeleryPublisher, items: list[dict[str, Any]]) -> Go:
    """Store the submissions (as ``enqueue`` does, in one transaction); publishing them is the start."""
    with sessions() as session:
        stored = add_submissions(session, validate_all(items), utcnow())
        session.commit()
    ids = [s.submission.id for s in stored]

    def go() -> datetime:
        started = utcnow()
        publisher.publish(ids)
        return started

    return go


def _applyq_final(engine: sa.Engine, prefix: str) -> int:
    return _count(
        engine,
        sa.select(sa.func.count())
        .select_from(Submission)
        .where(Submission.idempotency_key.startswith(prefix), Submission.status == "succeeded"),
    )


def _applyq_last(engine: sa.Engine) -> datetime:
    with engine.connect() as conn:
        last: datetime | None = conn.scalar(sa.select(sa.func.max(Attempt.finished_at)))
    assert last is not None, "no attempt was recorded"
    return last


# --- the naive Celery task ------------------------------------------------------------------------------


def run_naive(cfg: ThroughputConfig, sandbox_url: str, workdir: Path) -> Figures:
    """``celery -A benchmarks.naive worker --pool threads``; the batch is published in one go."""
    tag = uuid.uuid4().hex[:6]
    queue = f"bench-naive-{tag}"
    with scratch_database() as url:
        naive.create_tables(url)
        env = {**os.environ, "NAIVE_BROKER_URL": REDIS_URL, "NAIVE_QUEUE": queue, "NAIVE_DATABASE_URL": url,
               "NAIVE_KOMBO_URL": sandbox_url, "NAIVE_CONNECTIONS": str(cfg.threads)}  # fmt: skip
        with (workdir / "naive-worker.log").open("ab") as log:
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "benchmarks.naive", "worker", "--pool=threads",
                     f"--concurrency={cfg.threads}", f"--queues={queue}", f"--hostname=naive-{tag}-{n}@%h",
                     "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
                    env=env, stdout=log, stderr=log,
                )
                for n in range(cfg.processes)
            ]  # fmt: skip
        engine = sa.create_engine(url, pool_size=1)
        try:
            naive.app.conf.broker_url = REDIS_URL
            stage = partial(_naive_stage, queue)
            done = partial(_naive_final, engine)
            pids = [w.pid for w in workers]
            return _measure(cfg, sandbox_url, tag, pids, stage, done, partial(_naive_last, engine))
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=60)
            engine.dispose()
            redis.Redis.from_url(REDIS_URL).delete(queue)


def _naive_stage(queue: str, items: list[dict[str, Any]]) -> Go:
    """Nothing to store: publishing the tasks (the whole submission in each) is the start."""

    def go() -> datetime:
        started = utcnow()
        with naive.app.producer_or_acquire() as producer:
            for item in items:
                naive.deliver.apply_async(args=[item], queue=queue, producer=producer)
        return started

    return go


def _naive_final(engine: sa.Engine, prefix: str) -> int:
    table = naive.attempts
    query = sa.select(sa.func.count()).where(table.c.submission_key.startswith(prefix), table.c.http_status == 200)
    return _count(engine, query)


def _naive_last(engine: sa.Engine) -> datetime:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.max(naive.attempts.c.finished_at)))  # type: ignore[no-any-return]


# --- the no-queue limit ---------------------------------------------------------------------------------


def _send_retrying(res: naive.Resources, submission: dict[str, Any], tries: int = 3) -> httpx.Response:
    """``send_and_record``, again on a transport error, as any loop would (the sandbox may close a pooled
    connection that sat idle past its keep-alive between warm-up and run: one reset aborted a whole run)."""
    for _ in range(tries - 1):
        try:
            return naive.send_and_record(res, submission)
        except httpx.TransportError:
            continue
    return naive.send_and_record(res, submission)


def run_noqueue(cfg: ThroughputConfig, sandbox_url: str, workdir: Path) -> Figures:
    """A thread pool here: the same HTTP call and database write, no broker, no worker process; no more threads
    than Kombo's cap allows in flight over the integrations."""
    with scratch_database() as url:
        naive.create_tables(url)
        in_flight = min(cfg.threads * cfg.processes, CONCURRENCY_LIMIT * cfg.integrations)
        res = naive.build_resources(sandbox_url, url, connections=in_flight)
        try:
            with ThreadPoolExecutor(in_flight, thread_name_prefix="noqueue") as pool:
                list(pool.map(partial(_send_retrying, res), kombo_items(cfg.warmup, "warm-nq")))
                reset_sandbox(sandbox_url)
                items = kombo_items(cfg.submissions, uuid.uuid4().hex[:6], integrations=cfg.integrations)
                cpu0, started = cpu_seconds(os.getpid()), datetime.now(UTC)
                list(pool.map(partial(_send_retrying, res), items))
                cpu_s = cpu_seconds(os.getpid()) - cpu0
            return _figures(len(items), started, _naive_last(res.engine), cpu_s, None, sandbox_url)
        finally:
            res.client.close()
            res.engine.dispose()


# --- measuring a worker process -------------------------------------------------------------------------


def _measure(
    cfg: ThroughputConfig,
    sandbox_url: str,
    tag: str,
    pids: list[int],
    stage: Callable[[list[dict[str, Any]]], Go],
    done: Callable[[str], int],
    last: Callable[[], datetime],
    log_counts: Callable[[], LogCounts] | None = None,
) -> Figures:
    """Warm up, then stage and publish the batch and wait for it: figures from the publish on."""
    stage(kombo_items(cfg.warmup, f"warm-{tag}", integrations=cfg.integrations))()
    wait_until(lambda: done(f"bench-warm-{tag}-") >= cfg.warmup, cfg.timeout_s, "warm-up")
    reset_sandbox(sandbox_url)
    items = kombo_items(cfg.submissions, tag, integrations=cfg.integrations)
    go = stage(items)
    deferred0 = log_counts().deferrals if log_counts else 0
    with PeakRss(pids[0]) as rss:  # (of the first process, when there are several)
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        started = go()
        wait_until(lambda: done(f"bench-{tag}-") >= len(items), cfg.timeout_s, "batch", every_s=0.25)
        cpu_s = sum(cpu_seconds(pid) for pid in pids) - cpu0
    if log_counts is None:
        return _figures(len(items), started, last(), cpu_s, rss.peak_mb, sandbox_url)
    counts = log_counts()
    deferred = counts.deferrals - deferred0
    return _figures(len(items), started, last(), cpu_s, rss.peak_mb, sandbox_url, deferred, counts.task_failures)


RUNNERS: dict[str, Callable[[ThroughputConfig, str, Path], Figures]] = {
    "applyq": run_applyq,
    "naive": run_naive,
    "noqueue": run_noqueue,
}


def run_throughput(cfg: ThroughputConfig, sandbox_url: str, workdir: Path) -> dict[str, Figures]:
    """Each contender in turn against the same sandbox."""
    results = {}
    for name in cfg.contenders:
        reset_sandbox(sandbox_url)
        results[name] = RUNNERS[name](cfg, sandbox_url, workdir)
    return results


def main() -> int:
    """Run the contenders, print their figures and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=3000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--integrations", type=int, default=30)
    parser.add_argument("--defaults", action="store_true", help="applyq on its default limits (no APPLYQ_RATE_LIMITS)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes of --threads threads each")
    parser.add_argument("--pooler", action="store_true", help="applyq's workers through PgBouncer (transaction mode)")
    parser.add_argument("--pooler-pool-size", type=int, default=20, help="that PgBouncer's default_pool_size")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    contenders = tuple(args.contenders.split(","))
    cfg = ThroughputConfig(
        args.submissions,
        args.latency_ms,
        args.threads,
        integrations=args.integrations,
        contenders=contenders,
        defaults=args.defaults,
        processes=args.processes,
        pooler=args.pooler,
        pooler_pool_size=args.pooler_pool_size,
    )
    workdir = Path(tempfile.mkdtemp(prefix="applyq-bench-"))
    with sandbox(workdir, cfg.latency_ms) as url:
        results = run_throughput(cfg, url, workdir)
    print(f"{cfg.submissions:,} submissions, sandbox latency {cfg.latency_ms:g} ms, {cfg.threads} threads ({workdir})")
    for name, figures in results.items():
        print(f"{name:10} {figures}")
    if "applyq" in results:
        for name in ("naive", "noqueue"):
            if name in results:
                print(f"applyq / {name}: {results['applyq'].per_s / results[name].per_s:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
