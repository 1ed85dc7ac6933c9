"""Enqueue latency: how long the job board waits for applyq to accept one submission, beside plain Celery.

    python -m benchmarks.latency [--calls 1000] [--cli-runs 20] [--cli-batch 1000]

* **Python API**: ``Applyq.enqueue(submission)`` (validate, store in its own transaction, publish), one call
  at a time with no worker running; the baseline is the naive task's ``apply_async`` (a Redis publish only).
* **CLI**: ``applyq submit --file F`` with one submission, a new process each time (interpreter start
  included); the baseline is ``celery -A benchmarks.naive call naive.deliver``. A file of ``--cli-batch``
  lines gives the per-submission cost of a bulk import.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks import naive
from benchmarks.stack import REDIS_URL, kombo_items, percentile, scratch_database
from worker.config import Settings
from worker.db.engine import migrate
from worker.intake.library import Applyq


@dataclass(frozen=True)
class LatencyConfig:
    """How many enqueues to time."""

    calls: int = 1000
    cli_runs: int = 20
    cli_batch: int = 1000


@dataclass(frozen=True)
class Latency:
    """Milliseconds per enqueue."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def _latency(samples_s: list[float]) -> Latency:
    ms = [s * 1000 for s in samples_s]
    return Latency(len(ms), round(percentile(ms, 50), 2), round(percentile(ms, 99), 2), round(max(ms), 2))


def _time_each(call: Callable[[Any], object], items: list[Any]) -> list[float]:
    samples = []
    for item in items:
        started = time.perf_counter()
        call(item)
        samples.append(time.perf_counter() - started)
    return samples


def api_latency(settings: Settings, calls: int) -> Latency:
    """``Applyq.enqueue`` one submission at a time (after a warm-up)."""
    applyq = Applyq.from_settings(settings)
    try:
        _time_each(applyq.enqueue, kombo_items(50, f"lat-warm-{uuid.uuid4().hex[:6]}"))
        return _latency(_time_each(applyq.enqueue, kombo_items(calls, f"lat-{uuid.uuid4().hex[:6]}")))
    finally:
        applyq.close()


def naive_publish_latency(queue: str, calls: int) -> Latency:
    """The naive task's ``apply_async``: nothing is stored, the whole submission goes into the message."""
    naive.app.conf.broker_url = REDIS_URL

    def publish(item: dict[str, Any]) -> None:
        naive.deliver.apply_async(args=[item], queue=queue)

    _time_each(publish, kombo_items(50, "lat-naive-warm"))
    return _latency(_time_each(publish, kombo_items(calls, f"lat-naive-{uuid.uuid4().hex[:6]}")))


def cli_latency(env: dict[str, str], workdir: Path, runs: int) -> Latency:
    """``applyq submit --file F`` with one submission, a fresh process per run."""
    samples = []
    for n, item in enumerate(kombo_items(runs, f"lat-cli-{uuid.uuid4().hex[:6]}")):
        path = workdir / f"one-{n}.json"
        path.write_text(json.dumps(item))
        samples.append(_run([sys.executable, "-m", "worker", "submit", "--file", str(path)], env))
    return _latency(samples)


def cli_batch_ms(env: dict[str, str], workdir: Path, count: int) -> float:
    """Milliseconds per submission of one ``applyq submit --file`` with ``count`` JSON lines."""
    path = workdir / "batch.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in kombo_items(count, f"lat-b-{uuid.uuid4().hex[:6]}")))
    return round(_run([sys.executable, "-m", "worker", "submit", "--file", str(path)], env) * 1000 / count, 3)


def naive_cli_latency(env: dict[str, str], runs: int) -> Latency:
    """``celery -A benchmarks.naive call naive.deliver --args '[submission]'``, a fresh process per run."""
    samples = []
    for item in kombo_items(runs, f"lat-ncli-{uuid.uuid4().hex[:6]}"):
        args = ["-m", "celery", "-A", "benchmarks.naive", "call", "naive.deliver", "--args", json.dumps([item])]
        samples.append(_run([sys.executable, *args], env))
    return _latency(samples)


def _run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def run_latency(cfg: LatencyConfig, workdir: Path) -> dict[str, Any]:
    """Every enqueue path against a scratch database and queues of their own (no worker consumes them)."""
    tag = uuid.uuid4().hex[:6]
    settings_queue, naive_queue = f"bench-lat-{tag}", f"bench-lat-naive-{tag}"
    with scratch_database() as url:
        migrate(url)
        settings = Settings(database_url=url, broker_url=REDIS_URL, queue=settings_queue)
        env = {**os.environ, "APPLYQ_DATABASE_URL": url, "APPLYQ_BROKER_URL": REDIS_URL, "APPLYQ_QUEUE": settings_queue,
               "NAIVE_BROKER_URL": REDIS_URL, "NAIVE_QUEUE": naive_queue}  # fmt: skip
        try:
            return {
                "api": asdict(api_latency(settings, cfg.calls)),
                "naive_apply_async": asdict(naive_publish_latency(naive_queue, cfg.calls)),
                "cli": asdict(cli_latency(env, workdir, cfg.cli_runs)),
                "naive_celery_call": asdict(naive_cli_latency(env, cfg.cli_runs)),
                "cli_batch_ms_per_submission": cli_batch_ms(env, workdir, cfg.cli_batch),
                "cli_batch": cfg.cli_batch,
            }
        finally:
            redis.Redis.from_url(REDIS_URL).delete(settings_queue, settings.scheduled_queue, naive_queue)


def main() -> int:
    """Time every path and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--cli-runs", type=int, default=20)
    parser.add_argument("--cli-batch", type=int, default=1000)
    args = parser.parse_args()
    figures = run_latency(LatencyConfig(args.calls, args.cli_runs, args.cli_batch), Path(tempfile.mkdtemp()))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
