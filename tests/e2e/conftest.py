"""End-to-end fixtures: real PostgreSQL, real Redis, the sandbox and a worker as separate processes.

Every applyq process of a stack (worker, CLI, API, job board, metrics) reaches PostgreSQL through one PgBouncer in
transaction mode, shared by the whole session, with ``APPLYQ_DATABASE_POOLER=transaction``: the way a pooled
deployment runs (issue 16), at no cost of a second pass over the suite. ``APPLYQ_E2E_DATABASE=direct`` connects
them straight to PostgreSQL instead (the default where PgBouncer is not installed, except under ``CI``, where a
missing PgBouncer fails). The direct connection on applyq's defaults keeps its own e2e tests
(``test_direct_connection_e2e.py``). The tests' own reads and setup (``Stack.sessions``, ``fresh_database``'s
migration) always go to PostgreSQL directly: they are the harness, not applyq under test.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import IN_CI, require_service
from worker.admin.views import submission_json
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory, migrate
from worker.db.models import Submission
from worker.db.submissions import find_by_reference
from worker.intake.library import Applyq
from worker.local.pgbouncer import PGBOUNCER, pooled_url, run_pgbouncer
from worker.local.processes import Proc, create_database, drop_database, free_port, spawn, wait_http
from worker.local.sandbox import SandboxConfig
from worker.states import FINAL_STATUSES

PG_ADMIN_URL = os.environ.get("APPLYQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("APPLYQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
KOMBO_KEY = "sandbox-kombo-key"
STACKONE_KEY = SandboxConfig.stackone_api_key
CELPER_KEY = SandboxConfig.celper_api_key
FINAL = {s.value for s in FINAL_STATUSES}

#: ``pgbouncer`` or ``direct``: how the stacks' applyq processes reach PostgreSQL (see the module's docstring).
#: Unset: ``pgbouncer`` where it is installed, and always under ``CI`` (so a CI machine without it fails).
E2E_DATABASE = os.environ.get("APPLYQ_E2E_DATABASE") or ("pgbouncer" if IN_CI or Path(PGBOUNCER).exists() else "direct")
if E2E_DATABASE not in ("pgbouncer", "direct"):
    raise ValueError(f"APPLYQ_E2E_DATABASE={E2E_DATABASE!r}: pgbouncer or direct")
#: PgBouncer's ``default_pool_size``: server connections per database. A stack's worker runs 8 threads, and its
#: transactions are milliseconds long; each test's fresh database gets a pool of its own.
PGBOUNCER_POOL_SIZE = 10

#: Short timings so retries happen within seconds.
WORKER_ENV = {
    "APPLYQ_KOMBO_API_KEY": KOMBO_KEY,
    "APPLYQ_STACKONE_API_KEY": STACKONE_KEY,
    "APPLYQ_CELPER_API_KEY": CELPER_KEY,
    "APPLYQ_HTTP_TIMEOUT_S": "1",
    "APPLYQ_BACKOFF_BASE_S": "0.2",
    "APPLYQ_BACKOFF_MAX_S": "1",
    "APPLYQ_SYNC_PENDING_DELAY_S": "1",
    "APPLYQ_MAX_ATTEMPTS": "4",
    "APPLYQ_LEASE_MARGIN_S": "2",
    # a claim's lease covers a short wait in the worker, so a killed worker's claims expire within seconds
    "APPLYQ_CLAIM_AHEAD_S": "2",
    # a held provider key (a configuration error) is probed every few seconds, not every five minutes
    "APPLYQ_HOLD_PROBE_S": "3",
    "APPLYQ_DISPATCH_INTERVAL_S": "0.1",
    "APPLYQ_REPUBLISH_AFTER_S": "5",
    "APPLYQ_WORKER_CONCURRENCY": "8",
    "APPLYQ_LOG_LEVEL": "INFO",
}
SANDBOX_RETRY_AFTER_S = 2


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database, migrated to head (directly: setup, not applyq under test), dropped afterwards."""
    try:
        url = create_database(PG_ADMIN_URL, "applyq_e2e")
    except sa.exc.OperationalError as exc:
        require_service("PostgreSQL", str(exc).splitlines()[0])
    try:
        migrate(url)
        yield url
    finally:
        drop_database(PG_ADMIN_URL, url)


class _Pooler:
    """The session's one PgBouncer: started by the first stack that needs it, stopped when the session ends."""

    def __init__(self) -> None:
        self._running = contextlib.ExitStack()
        self.port: int | None = None
        #: where PgBouncer's own log is copied when it stops (set by the session fixture below)
        self.log: Path | None = None

    def start(self) -> int:
        """The PgBouncer's port, started if need be; skips, or fails under CI, without PgBouncer."""
        if self.port is None:
            try:
                self.port = self._running.enter_context(
                    run_pgbouncer(PG_ADMIN_URL, pool_size=PGBOUNCER_POOL_SIZE, log=self.log)
                )
            except (FileNotFoundError, RuntimeError) as exc:
                require_service("PgBouncer", f"{exc} (APPLYQ_E2E_DATABASE=direct runs the suite without it)")
        assert self.port is not None
        return self.port

    def url(self, pg_url: str) -> str:
        """``pg_url`` (a database on PostgreSQL) through the PgBouncer."""
        return pooled_url(pg_url, self.start())

    def close(self) -> None:
        self._running.close()
        self.port = None


PGBOUNCER_POOL = _Pooler()


@pytest.fixture(scope="session", autouse=True)
def _stop_pgbouncer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    PGBOUNCER_POOL.log = tmp_path_factory.getbasetemp() / "pgbouncer.log"
    yield
    PGBOUNCER_POOL.close()


def database_env(pg_url: str, *, direct: bool = False) -> dict[str, str]:
    """``APPLYQ_DATABASE_URL`` and ``APPLYQ_DATABASE_POOLER`` of an applyq process on the database ``pg_url``.

    Through the session's PgBouncer unless ``direct`` or ``APPLYQ_E2E_DATABASE=direct``.
    """
    if direct or E2E_DATABASE == "direct":
        return {"APPLYQ_DATABASE_URL": pg_url, "APPLYQ_DATABASE_POOLER": "none"}
    return {"APPLYQ_DATABASE_URL": PGBOUNCER_POOL.url(pg_url), "APPLYQ_DATABASE_POOLER": "transaction"}


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("Redis", str(exc))
    return REDIS_URL


@dataclass
class Stack:
    """Everything an end-to-end test talks to."""

    env: dict[str, str]
    sandbox_url: str
    sessions: sessionmaker[Session]
    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``applyq ARGS`` as a user would."""
        return subprocess.run(
            [sys.executable, "-m", "worker", *args],
            env=self.env, input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    @functools.cached_property
    def api(self) -> Applyq:
        """applyq's Python API on the stack's settings (database through the stack's PgBouncer, queue), as a
        job board's web app enqueues; closed with the stack."""
        return Applyq.from_settings(stack_settings(self.env), pool_size=1)

    def submit(self, payload: dict[str, Any]) -> str:
        """Enqueue one submission through the Python API (in this process: a CLI process costs about a second
        of start-up per test; ``submit_many`` and the CLI tests keep the command's own path covered)."""
        return self.api.enqueue(payload).submission.id

    def submit_many(self, payloads: list[dict[str, Any]]) -> list[str]:
        """Submit several at once as JSON Lines (one CLI process); their ids in order."""
        result = self.cli("submit", "--file", "-", stdin="".join(json.dumps(p) + "\n" for p in payloads))
        assert result.returncode == 0, result.stderr
        return [str(json.loads(line)["id"]) for line in result.stdout.splitlines()]

    def status(self, submission_id: str) -> dict[str, Any]:
        """What ``applyq status ID --json`` prints (``submission_json``, through JSON), read in this process."""
        with self.sessions() as session:
            row = find_by_reference(session, submission_id)
            assert row is not None, submission_id
            return dict(json.loads(json.dumps(submission_json(row, attempts=True), ensure_ascii=False)))

    def wait_final(self, *ids: str, timeout_s: float = 45.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.sessions() as session:
                statuses = session.scalars(sa.select(Submission.status).where(Submission.id.in_(ids))).all()
            if len(statuses) == len(ids) and all(s in FINAL for s in statuses):
                return
            time.sleep(0.2)
        raise AssertionError(f"not final after {timeout_s}s: {statuses}")

    def start_worker(self, name: str = "worker", *extra: str) -> Proc:
        """Start an ``applyq worker`` process (its log is ``<name>.log``)."""
        proc = spawn(
            ["worker", "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h", *extra], self.env, self.tmp / f"{name}.log"
        )
        self.procs.append(proc)
        return proc

    def sandbox_requests(self, job_id: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.sandbox_url}/_sandbox/requests", params={"job_id": job_id})
        return list(response.json())

    def sandbox_creations(self, job_id: str) -> int:
        """How many times the sandbox created an application at this job (more than one: a duplicate)."""
        held = httpx.get(f"{self.sandbox_url}/_sandbox/applications").json()
        return sum(int(a["creations"]) for a in held if a["job_id"] == job_id)


def stack_settings(env: dict[str, str]) -> Settings:
    """The settings an applyq process started with ``env`` reads (read the way it reads them)."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def stack_env(pg_url: str, redis_url: str, sandbox_url: str, *, direct: bool = False) -> dict[str, str]:
    """The environment of every applyq process of one stack: all providers point at the sandbox.

    The database is ``pg_url`` through the session's PgBouncer, or directly (``database_env``).
    """
    return {
        **os.environ,
        **WORKER_ENV,
        **database_env(pg_url, direct=direct),
        "APPLYQ_BROKER_URL": redis_url,
        "APPLYQ_KOMBO_BASE_URL": sandbox_url,
        "APPLYQ_STACKONE_BASE_URL": sandbox_url,
        "APPLYQ_CELPER_BASE_URL": f"{sandbox_url}/v1",
        # a queue of its own, so test sessions sharing this Redis never take each other's messages
        "APPLYQ_QUEUE": f"applyq-e2e-{uuid.uuid4().hex[:8]}",
    }


@contextlib.contextmanager
def start_stack(
    pg_url: str,
    redis_url: str,
    tmp: Path,
    *,
    with_worker: bool = True,
    sandbox_args: tuple[str, ...] = (),
    direct: bool = False,
) -> Iterator[Stack]:
    """Sandbox (and a worker) as child processes on ``pg_url``; everything is stopped afterwards.

    Their connections go through the session's PgBouncer unless ``direct`` (``database_env``); the stack's
    ``sessions`` (the test's own reads) always reach ``pg_url`` directly.
    """
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    env = stack_env(pg_url, redis_url, sandbox_url, direct=direct)
    args = ["sandbox", "--port", str(port), "--hang-s", "2", "--retry-after-s", str(SANDBOX_RETRY_AFTER_S)]
    sandbox = spawn([*args, *sandbox_args], env, tmp / "sandbox.log")
    engine = create_engine(pg_url, pool_size=2)
    stack = Stack(env, sandbox_url, create_session_factory(engine), tmp, [sandbox])
    try:
        wait_http(f"{sandbox_url}/_sandbox/health")
        if with_worker:
            stack.start_worker()
        yield stack
    finally:
        for proc in reversed(stack.procs):
            proc.stop()
        if "api" in vars(stack):
            stack.api.close()
        engine.dispose()


@pytest.fixture(scope="session")
def stack(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(pg_url, redis_url, tmp_path_factory.mktemp("e2e")) as stack:
        yield stack


@contextlib.contextmanager
def running_api(stack: Stack, token: str, log_name: str, *, timeout_s: float = 5.0) -> Iterator[httpx.Client]:
    """``applyq api`` on the stack's database and queue, accepting ``token``; a client that sends it."""
    port = free_port()
    proc = spawn(["api", "--port", str(port)], {**stack.env, "APPLYQ_API_TOKENS": token}, stack.tmp / log_name)
    try:
        wait_http(f"http://127.0.0.1:{port}/openapi.json")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=timeout_s) as client:
            yield client
    finally:
        proc.stop()


def kombo_submission(job_id: str, **overrides: Any) -> dict[str, Any]:
    """A unique Kombo submission for the sandbox scenario in ``job_id``."""
    tag = uuid.uuid4().hex[:10]
    data: dict[str, Any] = {
        "provider": "kombo",
        # an integration of its own: scripted 429s must not cool down other tests' submissions
        "integration_id": f"greenhouse:e2e-{tag}",
        "job_id": f"{job_id}-{tag}",
        "idempotency_key": f"e2e-{tag}",
        "candidate": {"first_name": "Ada", "last_name": "Lovelace", "email": f"ada.{tag}@example.com"},
    }
    data.update(overrides)
    return data
