"""What the benchmarks share: the services they use, the sandbox, scratch databases, submissions, readings."""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.procstat import rss_mb
from worker.local.processes import create_database, drop_database, free_port, spawn, wait_http

PG_ADMIN_URL = os.environ.get("APPLYQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: The benchmarks' own Redis database (flushed by the memory benchmark).
REDIS_URL = os.environ.get("APPLYQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
KOMBO_KEY = "sandbox-kombo-key"


@contextlib.contextmanager
def scratch_database(prefix: str = "applyq_bench") -> Iterator[str]:
    """An empty PostgreSQL database next to ``APPLYQ_TEST_PG_URL``'s, dropped afterwards."""
    url = create_database(PG_ADMIN_URL, prefix)
    try:
        yield url
    finally:
        drop_database(PG_ADMIN_URL, url)


@contextlib.contextmanager
def sandbox(workdir: Path, latency_ms: float) -> Iterator[str]:
    """The provider sandbox as a child process, answering after ``latency_ms``; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["sandbox", "--port", str(port), "--latency-ms", str(latency_ms)]
    proc = spawn(args, dict(os.environ), workdir / "sandbox.log")
    try:
        wait_http(f"{url}/_sandbox/health")
        yield url
    finally:
        proc.stop()


def reset_sandbox(url: str) -> None:
    """Forget every request and application, so each contender starts alike."""
    httpx.post(f"{url}/_sandbox/reset", timeout=10).raise_for_status()


def sandbox_stats(url: str) -> dict[str, Any]:
    """Requests and answers by status since the last reset."""
    return dict(httpx.get(f"{url}/_sandbox/stats", timeout=10).json())


def kombo_items(count: int, tag: str, *, integrations: int = 30) -> list[dict[str, Any]]:
    """``count`` Kombo submissions that succeed at once, spread over ``integrations`` employers."""
    return [
        {
            "provider": "kombo",
            "integration_id": f"greenhouse:bench-{tag}-{n % integrations}",
            "job_id": f"ok--bench-{tag}-{n}",
            "idempotency_key": f"bench-{tag}-{n}",
            "candidate": {"first_name": "Ada", "last_name": f"Lovelace{n}", "email": f"ada.{n}@example.com"},
            "metadata": {"application_id": n},
        }
        for n in range(count)
    ]


def wait_until(done: Callable[[], bool], timeout_s: float, what: str, *, every_s: float = 0.1) -> None:
    """Poll ``done`` until it is true; raise naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout_s:g} s")
        time.sleep(every_s)


def percentile(values: list[float], pct: float) -> float:
    """The ``pct``-th percentile (inclusive method); needs at least two values."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


class PeakRss:
    """Samples a process's resident set size in the background; ``peak_mb`` is the largest reading."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.peak_mb = rss_mb(pid)
        self._pid = pid
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb(self._pid))

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self.peak_mb = max(self.peak_mb, rss_mb(self._pid))
