"""One clock: two workers, one of them 120 s ahead (libfaketime), deliver as if their clocks agreed.

Leases, due times and deferrals are the database's time, cooldowns and reservations Redis's, so a worker
whose clock runs ahead neither takes a lease another worker still holds (a second request for an application
while the first is in flight), nor finds a retry due before the provider's Retry-After, nor pushes deferrals
two minutes out for everyone. The same workload runs with both workers in step and then with one ahead; the
delivery times are printed side by side (a measurement, not an assertion: CI machines vary).
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import require_service
from tests.e2e.conftest import Stack, fresh_database, kombo_submission, start_stack
from worker.db.models import Submission
from worker.local.processes import Proc, spawn

pytestmark = pytest.mark.e2e

SKEW_S = 120
RETRY_AFTER_S = 5
INTEGRATIONS = 10
PER_INTEGRATION = 30
#: the first application of the first five integrations is answered 429 (Retry-After 5 s) once. They are submitted
#: first, so that they go out together (a worker has 8 threads) and their 429s make one cooldown (a Kombo rate limit
#: cools the whole API key), not one after another
LIMITED = 5
#: where Debian's ``faketime`` package puts the library (``apt-get install faketime``)
_LIBFAKETIME = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                "/usr/local/lib/faketime/libfaketime.so.1")  # fmt: skip


def libfaketime() -> str:
    """The libfaketime library; skipped locally without it, a failure in CI."""
    for pattern in _LIBFAKETIME:
        if found := sorted(glob.glob(pattern)):
            return found[0]
    require_service("libfaketime", "install Debian's faketime package")
    raise AssertionError("unreachable")


def skewed_env(env: dict[str, str], library: str) -> dict[str, str]:
    """``env`` for a process whose every clock (wall and monotonic) runs ``SKEW_S`` ahead."""
    return {**env, "LD_PRELOAD": library, "FAKETIME": f"+{SKEW_S}s", "FAKETIME_NO_CACHE": "1"}


def measured_skew(env: dict[str, str]) -> float:
    """How far ahead a Python process started with ``env`` sees the time."""
    out = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env, capture_output=True,
                         text=True, check=True, timeout=30)  # fmt: skip
    return float(out.stdout) - time.time()


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    sandbox_args = ("--retry-after-s", str(RETRY_AFTER_S), "--latency-ms", "20")
    with (
        fresh_database() as pg_url,
        start_stack(pg_url, redis_url, tmp_path, with_worker=False, sandbox_args=sandbox_args) as stack,
    ):
        # a known rate: the scripted 429s are no real rate limit, and a rate learned from them would slow the
        # run down and blur what is measured here (the clocks)
        stack.env["APPLYQ_RATE_LIMITS"] = json.dumps({"kombo:*": "50/s"})
        yield stack


def workload(name: str) -> tuple[str, list[dict[str, Any]]]:
    """300 applications over 10 integrations of their own (new limit keys in the shared Redis each run), the
    first ``LIMITED`` answered 429 once."""
    tag, items = f"{name}{uuid.uuid4().hex[:6]}", []
    for j in range(PER_INTEGRATION):
        for i in range(INTEGRATIONS):
            job = f"ratelimit1--{tag}-{i}-{j}" if j == 0 and i < LIMITED else f"ok--{tag}-{i}-{j}"
            items.append(kombo_submission(job, integration_id=f"greenhouse:skew-{tag}-{i}"))
    return tag, items


def deliver(stack: Stack, items: list[dict[str, Any]]) -> float:
    """Submit, wait until every application is final; the seconds it took."""
    started = time.monotonic()
    ids = stack.submit_many(items)
    stack.wait_final(*ids, timeout_s=80)
    elapsed = time.monotonic() - started
    with stack.sessions() as session:
        statuses = session.scalars(sa.select(Submission.status).where(Submission.id.in_(ids))).all()
    assert sorted(set(statuses)) == ["succeeded"], statuses
    return elapsed


def requests_by_job(stack: Stack, tag: str) -> dict[str, list[dict[str, Any]]]:
    """The sandbox's log of this workload's create requests, per application (job id), in arrival order."""
    by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in httpx.get(f"{stack.sandbox_url}/_sandbox/requests").json():
        if record["job_id"] and f"--{tag}-" in record["job_id"]:
            by_job[record["job_id"]].append(record)
    return {job: sorted(records, key=lambda r: r["received_at"]) for job, records in by_job.items()}


def overlapping(by_job: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Applications requested again while an earlier request for them was still unanswered."""
    return [
        job
        for job, records in by_job.items()
        if any(later["received_at"] < earlier["answered_at"] for earlier, later in itertools.pairwise(records))
    ]


def before_retry_after(by_job: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Applications requested again sooner than Retry-After after a 429 (a clock tick of slack)."""
    return [
        job
        for job, records in by_job.items()
        for earlier, later in itertools.pairwise(records)
        if earlier["status"] == 429 and later["received_at"] - earlier["answered_at"] < RETRY_AFTER_S - 0.01
    ]


def check(stack: Stack, tag: str, items: list[dict[str, Any]]) -> None:
    """Every application created once, never asked twice at a time, never before its Retry-After."""
    by_job = requests_by_job(stack, tag)
    assert len(by_job) == len(items)
    assert overlapping(by_job) == []
    assert before_retry_after(by_job) == []
    limited = [records for records in by_job.values() if records[0]["status"] == 429]
    assert len(limited) == LIMITED  # the 429s happened
    created: Counter[str] = Counter()
    for application in httpx.get(f"{stack.sandbox_url}/_sandbox/applications").json():
        created[application["job_id"]] += int(application["creations"])
    assert {item["job_id"]: created[item["job_id"]] for item in items} == {item["job_id"]: 1 for item in items}


def start_workers(stack: Stack, name: str, skewed: str | None) -> list[Proc]:
    """Two workers; the second with ``skewed``'s libfaketime, if given."""
    first = stack.start_worker(f"{name}-a")
    if skewed is None:
        return [first, stack.start_worker(f"{name}-b")]
    env = skewed_env(stack.env, skewed)
    second = spawn(["worker", "--hostname", f"{name}-b-{uuid.uuid4().hex[:6]}@%h"], env, stack.tmp / f"{name}-b.log")
    stack.procs.append(second)
    return [first, second]


def wait_ready(workers: list[Proc], timeout_s: float = 60.0) -> None:
    """Until every worker's Celery consumer is up, so that the delivery time leaves the start-up out."""
    deadline = time.monotonic() + timeout_s
    while not all(" ready." in proc.output() for proc in workers):
        assert time.monotonic() < deadline, [proc.output()[-2000:] for proc in workers]
        assert all(proc.popen.poll() is None for proc in workers), [proc.output()[-2000:] for proc in workers]
        time.sleep(0.1)


def stop(workers: list[Proc]) -> None:
    for proc in workers:
        proc.stop()


def test_a_worker_two_minutes_ahead_changes_nothing(stack: Stack) -> None:
    library = libfaketime()
    assert abs(measured_skew(skewed_env(dict(os.environ), library)) - SKEW_S) < 5  # libfaketime works here

    in_step = start_workers(stack, "in-step", None)
    (plain_tag, plain), plain_s = workload("plain"), 0.0
    try:
        wait_ready(in_step)
        plain_s = deliver(stack, plain)
    finally:
        stop(in_step)
    check(stack, plain_tag, plain)

    skewed_workers = start_workers(stack, "skewed", library)
    ahead_tag, ahead = workload("ahead")
    try:
        wait_ready(skewed_workers)
        ahead_s = deliver(stack, ahead)
    finally:
        stop(skewed_workers)
    check(stack, ahead_tag, ahead)
    assert "submission succeeded" in skewed_workers[1].output()  # the worker ahead took its share

    print(
        f"\nclock skew: {len(ahead)} applications delivered in {plain_s:.1f} s by two workers in step "
        f"({span(stack, plain_tag)}), {ahead_s:.1f} s with one {SKEW_S} s ahead ({span(stack, ahead_tag)}): "
        f"{ahead_s / plain_s:.2f}x"
    )


def span(stack: Stack, tag: str) -> str:
    """How long the sandbox saw the workload's requests come, and how many."""
    records = [r for rs in requests_by_job(stack, tag).values() for r in rs]
    first, last = min(r["received_at"] for r in records), max(r["received_at"] for r in records)
    return f"{len(records)} requests over {last - first:.1f} s"
