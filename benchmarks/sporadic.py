"""Sporadic 429s on the adaptive rate: the same load drained with and without a few 429s, in one run.

    python -m benchmarks.sporadic [--submissions 600] [--integrations 10] [--every 6] [--latency-ms 100]

The sandbox enforces no rate; every ``--every``-th application (1 in 6 by default) is answered one 429 with
``Retry-After: 1`` (the sandbox's ``remoteratelimit--`` scenario: a relayed ATS limit, a neighbour on the same
integration) and then succeeds. applyq runs on its defaults (Kombo's adaptive rate). Such 429s should cost
the cooldowns they ask for, not a collapse of the learned rate: the run prints both drain times, their ratio
(the target is at most 2x) and the adaptive rates applyq holds at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from benchmarks.stack import KOMBO_KEY, PG_ADMIN_URL, REDIS_URL, kombo_items, reset_sandbox, sandbox, sandbox_stats
from benchmarks.traffic import forget_limits, wait_final, warm_up
from worker.clock import utcnow
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory, migrate
from worker.db.models import Submission
from worker.intake.enqueue import enqueue, validate_all
from worker.local.processes import create_database, drop_database, spawn
from worker.runtime.tasks import CeleryPublisher, create_celery


@dataclass(frozen=True)
class Load:
    """How many applications, over how many integrations, and which share of them gets one 429."""

    submissions: int = 600
    integrations: int = 10
    #: every so many-th application gets one 429 (0: none)
    every: int = 6
    latency_ms: float = 100.0
    timeout_s: float = 600.0


@dataclass
class Drain:
    """One run's result."""

    case: str
    submitted: int
    delivered: int
    calls: int
    answered_429: int
    drain_s: float
    #: the adaptive rates applyq held per integration at the end (requests/s), lowest first
    rates_end: list[float]


def items(load: Load, every: int, run: str) -> list[dict[str, Any]]:
    """The applications, round-robin over the integrations; every ``every``-th of each integration's is
    scripted to get one 429 (so each integration sees the same share)."""
    batch = kombo_items(load.submissions, f"sporadic-{run}", integrations=load.integrations)
    for n, item in enumerate(batch):
        item["job_id"] = f"{_scenario(n // load.integrations, every)}--{item['job_id'].partition('--')[2]}"
    return batch


def _scenario(index: int, every: int) -> str:
    """The sandbox scenario of an integration's ``index``-th application: one 429, or none.

    The 429 is the ATS's limit relayed (Kombo ``REMOTE.RATE_LIMIT_EXCEEDED``): sporadic 429s are an
    integration's (a relayed ATS limit, a neighbour on the same integration). Kombo's own
    ``PLATFORM.RATE_LIMIT_EXCEEDED`` says the whole API key is over its rate and rightly cools every
    integration of it, which no amount of learning can make cheap.
    """
    return "remoteratelimit" if every and index % every == every - 1 else "ok"


def run_case(load: Load, every: int, url: str, workdir: Path) -> Drain:
    """A fresh database, cold limits and a fresh worker on its defaults; drain the load once."""
    pg_url = create_database(PG_ADMIN_URL, "applyq_sporadic")
    forget_limits()
    try:
        migrate(pg_url)
        queue = f"sporadic-{uuid.uuid4().hex[:6]}"
        env = {**os.environ, "APPLYQ_DATABASE_URL": pg_url, "APPLYQ_BROKER_URL": REDIS_URL,
               "APPLYQ_QUEUE": queue, "APPLYQ_KOMBO_BASE_URL": url, "APPLYQ_KOMBO_API_KEY": KOMBO_KEY,
               "APPLYQ_LOG_LEVEL": "WARNING"}  # fmt: skip
        env.pop("APPLYQ_RATE_LIMITS", None)
        worker = spawn(["worker"], env, workdir / f"worker-{queue}.log")
        try:
            return _drain(load, every, pg_url, queue, url)
        finally:
            worker.stop()
    finally:
        drop_database(PG_ADMIN_URL, pg_url)


def _drain(load: Load, every: int, pg_url: str, queue: str, url: str) -> Drain:
    sessions = create_session_factory(create_engine(pg_url, pool_size=2))
    publisher = CeleryPublisher(
        create_celery(Settings(database_url=pg_url, broker_url=REDIS_URL, queue=queue), REDIS_URL)
    )
    warm_up(sessions, publisher)
    reset_sandbox(url)
    started = time.monotonic()
    stored = enqueue(sessions, publisher, validate_all(items(load, every, uuid.uuid4().hex[:6])), utcnow())
    ids = [s.submission.id for s in stored]
    wait_final(sessions, ids, load.timeout_s)
    drain_s = time.monotonic() - started
    with sessions() as session:
        delivered = session.scalar(
            sa.select(sa.func.count()).where(Submission.id.in_(ids), Submission.status == "succeeded")
        )
    stats = sandbox_stats(url)
    return Drain(
        case=f"1 in {every} gets one 429" if every else "no 429",
        submitted=load.submissions,
        delivered=int(delivered or 0),
        calls=int(stats["requests"]),
        answered_429=int(stats["by_status"].get("429", 0)),
        drain_s=round(drain_s, 1),
        rates_end=_rates(),
    )


def _rates() -> list[float]:
    """The adaptive rate each benchmark integration ended with (the initial rate where none was learnt)."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter("applyq:lim:kombo:*bench-sporadic-*:rate"))
    return sorted(round(float(client.get(k) or 0), 1) for k in keys)


def run(load: Load, workdir: Path) -> dict[str, Any]:
    """Both cases against one sandbox (no rate limit, ``latency_ms``); their drains and the ratio."""
    with sandbox(workdir, load.latency_ms) as url:
        clean = run_case(load, 0, url, workdir)
        sporadic = run_case(load, load.every, url, workdir)
    return {
        "load": asdict(load),
        "cases": [asdict(clean), asdict(sporadic)],
        "ratio": round(sporadic.drain_s / clean.drain_s, 2) if clean.drain_s else None,
    }


def print_table(figures: dict[str, Any]) -> None:
    """Both drains and their ratio."""
    load = figures["load"]
    print(f"{load['submissions']} Kombo applications over {load['integrations']} integrations, adaptive rate "
          f"(defaults), sandbox {load['latency_ms']:g} ms, no rate limit")  # fmt: skip
    print(f"{'case':24}{'delivered':>10}{'calls':>7}{'429s':>6}{'drain s':>9}  adaptive rates at the end (/s)")
    for c in figures["cases"]:
        rates = ", ".join(f"{r:g}" for r in c["rates_end"]) or "-"
        print(f"{c['case']:24}{c['delivered']:>10}{c['calls']:>7}{c['answered_429']:>6}{c['drain_s']:>9}  {rates}")
    print(f"ratio (with 429s / without): {figures['ratio']}x (target <= 2x)")


def main() -> int:
    """Run both cases, print the table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=600)
    parser.add_argument("--integrations", type=int, default=10)
    parser.add_argument("--every", type=int, default=6, help="every N-th application gets one 429")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load = Load(args.submissions, args.integrations, args.every, args.latency_ms)
    figures = run(load, Path(tempfile.mkdtemp(prefix="applyq-sporadic-")))
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
