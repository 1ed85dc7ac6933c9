"""History that scales: what operators and the job board feel with years of history, beside an empty database.

    python -m benchmarks.scale [--submissions 1000000] [--json]      (make bench-scale)

Two scratch PostgreSQL databases, migrated: one empty, one filled in SQL (``INSERT … SELECT
generate_series``, through the same triggers as production writes) with ``--submissions`` ended submissions
of two attempts each (a 429 then the answer) spread over a year. Both get the same small live backlog (20
parked). Each operation is timed on both, as a user runs it: the CLI commands as new processes (interpreter
start included), the metrics scrape as an HTTP GET of a running ``applyq metrics``, enqueue through the
Python API, the dispatcher's due query in-process. A table of times and ratios, with the targets of issue 16.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import sqlalchemy as sa

from benchmarks.stack import REDIS_URL, kombo_items, percentile, scratch_database
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory, migrate
from worker.db.leases import due_submission_ids
from worker.db.tally import fold
from worker.intake.library import Applyq
from worker.local.processes import free_port, spawn, wait_http

__all__ = ["Row", "fill", "main", "run_scale"]

#: One year of history: the i-th submission was created this many seconds after the first.
_YEAR_S = 365 * 24 * 3600

_FILL_SUBMISSIONS = """
INSERT INTO applyq_submission (id, client_scope, idempotency_key, payload_hash, provider_idempotency_key, provider,
    integration_id, job_id, payload, email_key, status, attempt_count, window_started_at, window_attempt_base,
    next_attempt_at, published_at, outcome_code, outcome_reason, provider_application_id, created_at, updated_at,
    finished_at)
SELECT gen_random_uuid()::text, 'default', :tag || '-' || g, md5(g::text), 'applyq-' || md5(:tag || g),
    (ARRAY['kombo', 'stackone', 'celper'])[1 + g % 3], 'greenhouse:emp-' || (g % 500), 'job-' || (g % 20000),
    jsonb_build_object('provider', 'kombo', 'job_id', 'job-' || (g % 20000), 'idempotency_key', :tag || '-' || g,
        'candidate', jsonb_build_object('first_name', 'Ada', 'last_name', 'L' || g,
                                        'email', 'a' || g || '@example.com')),
    'a' || g || '@example.com', s.status, 2, c.at, 0, NULL, NULL, s.code, s.reason,
    CASE WHEN s.status = 'succeeded' THEN 'app-' || g END, c.at, c.at + interval '3 seconds',
    c.at + interval '3 seconds'
FROM generate_series(1, :n) g
CROSS JOIN LATERAL (SELECT now() - interval '1 day' - make_interval(secs => (:n - g) * :spread) AS at) c
CROSS JOIN LATERAL (SELECT CASE WHEN g % 50 = 0 THEN 'terminal' WHEN g % 97 = 0 THEN 'cancelled'
    ELSE 'succeeded' END AS status) t
CROSS JOIN LATERAL (SELECT t.status,
    CASE t.status WHEN 'terminal' THEN 'REMOTE.REJECTED' END AS code,
    CASE t.status WHEN 'succeeded' THEN 'created' WHEN 'terminal' THEN 'rejected' ELSE 'cancelled' END AS reason) s
"""
_FILL_ATTEMPTS = """
INSERT INTO applyq_attempt (submission_id, number, started_at, finished_at, latency_ms, kind, http_status,
    error_kind, error_code, decision, reason, delay_s, unknown_outcome)
SELECT s.id, n, s.created_at + (n - 1) * interval '1 second', s.created_at + (n - 1) * interval '1 second'
        + interval '150 milliseconds', 150, 'send',
    CASE WHEN n = 1 THEN 429 WHEN s.status = 'succeeded' THEN 200 ELSE 400 END,
    CASE WHEN n = 1 THEN 'rate_limited' WHEN s.status = 'terminal' THEN 'rejected' END,
    CASE WHEN n = 1 THEN 'PLATFORM.RATE_LIMIT_EXCEEDED' WHEN s.status = 'terminal' THEN 'REMOTE.REJECTED' END,
    CASE WHEN n = 1 THEN 'retry' WHEN s.status = 'succeeded' THEN 'success' ELSE 'terminal' END,
    CASE WHEN n = 1 THEN 'rate_limited' ELSE s.outcome_reason END,
    CASE WHEN n = 1 THEN 1.0 END, false
FROM applyq_submission s CROSS JOIN generate_series(1, 2) n
WHERE s.idempotency_key LIKE :tag || '-%'
"""


@dataclass(frozen=True)
class Row:
    """One operation timed on the empty and the full database (seconds), and its target."""

    name: str
    empty_s: float
    full_s: float
    #: ``ratio ≤ x`` (a multiple of the empty time) or ``≤ x s`` (an absolute time)
    target: str

    @property
    def ratio(self) -> float:
        """Full over empty."""
        return self.full_s / self.empty_s if self.empty_s > 0 else float("inf")

    @property
    def met(self) -> bool:
        """Whether the target holds."""
        kind, limit = self.target.split(" ", 1)
        return self.full_s <= float(limit) if kind == "abs" else self.ratio <= float(limit)


def fill(url: str, submissions: int, *, parked: int = 20) -> float:
    """Fill ``url`` with ``submissions`` ended submissions of two attempts each, and ``parked`` parked; seconds."""
    started = time.perf_counter()
    engine = sa.create_engine(url)
    tag = f"scale-{uuid.uuid4().hex[:6]}"
    try:
        with engine.begin() as conn:
            if submissions:
                conn.execute(sa.text(_FILL_SUBMISSIONS), {"tag": tag, "n": submissions,
                                                          "spread": _YEAR_S / submissions})  # fmt: skip
                conn.execute(sa.text(_FILL_ATTEMPTS), {"tag": tag})
            conn.execute(sa.text(_FILL_SUBMISSIONS.replace("s.status, 2,", "'parked', 2,")),
                         {"tag": f"{tag}-parked", "n": parked, "spread": 60})  # fmt: skip
        sessions = create_session_factory(engine)
        with sessions() as session:
            fold(session)
            session.commit()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _median(run: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _cli(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> Callable[[], None]:
    def run() -> None:
        result = subprocess.run([sys.executable, "-m", "worker", *args], env=env, capture_output=True, timeout=600)
        if result.returncode not in ok:
            raise RuntimeError(f"applyq {' '.join(args)} exited {result.returncode}: {result.stderr.decode()[-500:]}")

    return run


@contextlib.contextmanager
def _metrics_server(env: dict[str, str], workdir: Path) -> Iterator[str]:
    port = free_port()
    proc = spawn(["metrics", "--port", str(port)], env, workdir / f"metrics-{port}.log")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http(url, timeout_s=60)
        yield url
    finally:
        proc.stop()


def _enqueue_p99(settings: Settings, calls: int) -> float:
    applyq = Applyq.from_settings(settings)
    try:
        for item in kombo_items(30, f"scale-warm-{uuid.uuid4().hex[:6]}"):
            applyq.enqueue(item)
        samples = []
        for item in kombo_items(calls, f"scale-{uuid.uuid4().hex[:6]}"):
            started = time.perf_counter()
            applyq.enqueue(item)
            samples.append(time.perf_counter() - started)
        return percentile(samples, 99)
    finally:
        applyq.close()


def _due_query(url: str) -> Callable[[], None]:
    engine = create_engine(url, pool_size=1)
    sessions = create_session_factory(engine)

    def run() -> None:
        with sessions() as session:
            due_submission_ids(session, republish_after_s=60, limit=500, skip_locked=True)
            session.rollback()

    return run


def measure(url: str, workdir: Path, *, repeat: int, enqueue_calls: int) -> dict[str, float]:
    """Every operation's time on one database (medians of ``repeat`` runs; enqueue's p99)."""
    queue = f"bench-scale-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "APPLYQ_DATABASE_URL": url, "APPLYQ_BROKER_URL": REDIS_URL, "APPLYQ_QUEUE": queue}
    batch = workdir / "batch.jsonl"
    times: dict[str, float] = {}
    try:
        with _metrics_server(env, workdir) as metrics_url:
            httpx.get(metrics_url, timeout=60).raise_for_status()  # warm: imports, first connection
            times["metrics scrape (HTTP)"] = _median(lambda: httpx.get(metrics_url, timeout=60).raise_for_status(),
                                                     repeat * 3)  # fmt: skip
        times["applyq stats"] = _median(_cli(env, "stats", "--json"), repeat)
        times["applyq parked list"] = _median(_cli(env, "parked", "list", "--json"), repeat)
        times["applyq list --limit 50"] = _median(_cli(env, "list", "--limit", "50", "--json"), repeat)
        times["applyq health"] = _median(_cli(env, "health", "--json", ok=(0, 1)), repeat)

        def submit_file() -> None:
            items = kombo_items(1000, f"scale-file-{uuid.uuid4().hex[:6]}")
            batch.write_text("".join(json.dumps(item) + "\n" for item in items))
            _cli(env, "submit", "--file", str(batch))()

        times["applyq submit --file (1,000 lines)"] = _median(submit_file, repeat)
        times["enqueue p99 (Python API)"] = _enqueue_p99(
            Settings(database_url=url, broker_url=REDIS_URL, queue=queue), enqueue_calls
        )
        times["dispatcher's due query"] = _median(_due_query(url), repeat * 10)
    finally:
        redis.Redis.from_url(REDIS_URL).delete(queue)
    return times


#: issue 16's acceptance: a ratio to the empty database, or an absolute time
TARGETS = {
    "metrics scrape (HTTP)": "abs 0.25",
    "applyq stats": "ratio 2",
    "applyq parked list": "ratio 1.5",
    "applyq list --limit 50": "ratio 1.5",
    "applyq submit --file (1,000 lines)": "ratio 1.5",
    "enqueue p99 (Python API)": "ratio 1.5",
    "applyq health": "ratio 1.5",
    "dispatcher's due query": "ratio 1.5",
}


def run_scale(submissions: int, *, repeat: int = 3, enqueue_calls: int = 500) -> dict[str, Any]:
    """Fill, measure both databases, return the rows and the fill time."""
    with tempfile.TemporaryDirectory(prefix="applyq-scale-") as tmp, scratch_database("applyq_scale_empty") as empty, \
            scratch_database("applyq_scale_full") as full:  # fmt: skip
        migrate(empty)
        migrate(full)
        fill(empty, 0)
        fill_s = fill(full, submissions)
        size = _database_size(full)
        on_empty = measure(empty, Path(tmp), repeat=repeat, enqueue_calls=enqueue_calls)
        on_full = measure(full, Path(tmp), repeat=repeat, enqueue_calls=enqueue_calls)
    rows = [Row(name, on_empty[name], on_full[name], TARGETS[name]) for name in TARGETS]
    return {"submissions": submissions, "fill_s": round(fill_s, 1), "database_size": size, "rows": rows}


def _database_size(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.scalar(sa.text("SELECT pg_size_pretty(pg_database_size(current_database()))")))
    finally:
        engine.dispose()


def render(result: dict[str, Any]) -> str:
    """The Markdown table."""
    lines = [
        f"{result['submissions']:,} ended submissions (2 attempts each; {result['database_size']}, filled in "
        f"{result['fill_s']} s) beside an empty database:",
        "",
        "| operation | empty | full | full/empty | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        kind, limit = row.target.split(" ", 1)
        target = f"≤ {limit} s" if kind == "abs" else f"≤ {limit}x"
        lines.append(f"| {row.name} | {_fmt(row.empty_s)} | {_fmt(row.full_s)} | {row.ratio:.2f}x | {target} | "
                     f"{'yes' if row.met else 'NO'} |")  # fmt: skip
    return "\n".join(lines)


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds:.3f} s"


def main(argv: list[str] | None = None) -> int:
    """Run, print the table (or JSON); exit 1 if a target was missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_scale(args.submissions, repeat=args.repeat)
    if args.json:
        rows = [{**vars(r), "ratio": round(r.ratio, 3), "met": r.met} for r in result["rows"]]
        print(json.dumps({**result, "rows": rows}, indent=2))
    else:
        print(render(result))
    return 0 if all(r.met for r in result["rows"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
