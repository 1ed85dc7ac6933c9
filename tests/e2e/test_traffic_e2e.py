"""Traffic control across processes: three workers share one integration's limit and its cooldown."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, fresh_database, kombo_submission, start_stack

pytestmark = pytest.mark.e2e

RATE = 10


@pytest.fixture
def three_workers(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    sandbox_args = ("--rate-limit", str(RATE), "--latency-ms", "20")
    with (
        fresh_database() as pg_url,
        start_stack(pg_url, redis_url, tmp_path, with_worker=False, sandbox_args=sandbox_args) as stack,
    ):
        stack.env["APPLYQ_RATE_LIMITS"] = json.dumps({"kombo:*": f"{RATE}/s"})
        for n in range(3):
            stack.start_worker(f"worker{n}")
        yield stack


def creates(requests: list[dict[str, Any]], integration: str) -> list[dict[str, Any]]:
    """The integration's create calls (not the reads: each worker's Kombo pre-flight, a look-up)."""
    return [r for r in requests if r["method"] == "POST" and r["headers"].get("x-integration-id") == integration]


def busiest_second(times: list[float]) -> int:
    """The most requests in any one-second window."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))


def test_the_rate_holds_across_worker_processes(three_workers: Stack) -> None:
    stack = three_workers
    integration = "greenhouse:shared-limit"
    ids = stack.submit_many([kombo_submission("ok--limit", integration_id=integration) for _ in range(50)])
    stack.wait_final(*ids, timeout_s=60)
    requests = httpx.get(f"{stack.sandbox_url}/_sandbox/requests").json()
    ours = creates(requests, integration)
    assert len(ours) == 50  # one call each: nothing was refused, nothing retried
    assert {r["status"] for r in ours} == {200}
    # the rate, plus the send-pacing bucket's 0.2 s worth (AdaptiveParams.send_burst_s) at the window's edge
    assert busiest_second([r["received_at"] for r in ours]) <= RATE + int(RATE * 0.2)
    workers = [p.output() for p in stack.procs[1:]]
    assert all("submission succeeded" in log for log in workers)  # every process took part


def test_retry_after_cools_down_the_whole_integration_for_every_process(three_workers: Stack) -> None:
    stack = three_workers
    integration = "greenhouse:cooldown"
    first = stack.submit(kombo_submission("ratelimit1--cool", integration_id=integration))
    deadline = time.monotonic() + 20
    while not stack.status(first)["attempts"] and time.monotonic() < deadline:
        time.sleep(0.05)
    others = stack.submit_many([kombo_submission("ok--cool", integration_id=integration) for _ in range(10)])
    stack.wait_final(first, *others, timeout_s=60)
    requests = httpx.get(f"{stack.sandbox_url}/_sandbox/requests").json()
    ours = creates(requests, integration)
    limited_at = next(r["received_at"] for r in ours if r["status"] == 429)
    after = [r["received_at"] - limited_at for r in ours if r["received_at"] > limited_at]
    assert len(after) == 11
    assert min(after) >= 2.0 - 0.05  # the sandbox's Retry-After: nobody called before it ran out
