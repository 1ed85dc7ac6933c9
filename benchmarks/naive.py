"""The naive peer: plain Celery tasks as one would write them without applyq (the benchmarks' baseline).

    celery -A benchmarks.naive worker --pool threads -c 64

``naive.deliver(submission)`` POSTs the Kombo create-application request (the same bytes applyq sends),
records the attempt in its own table and leaves retries to Celery: ``autoretry_for`` 429, 5xx and
transport errors, ``retry_backoff``, ``retry_jitter``, ``max_retries=5``. ``naive.noop`` stands in for a
delivery scheduled far ahead (the memory benchmark). Configured from the environment:

* ``NAIVE_BROKER_URL`` (default ``redis://127.0.0.1:6379/15``), ``NAIVE_QUEUE`` (default ``naive``)
* ``NAIVE_DATABASE_URL`` where ``naive_attempt`` lives (``create_tables`` makes it)
* ``NAIVE_KOMBO_URL`` (the sandbox, e.g. ``http://127.0.0.1:8700``), ``NAIVE_KOMBO_API_KEY``
* ``NAIVE_HTTP_TIMEOUT_S`` (default 30), ``NAIVE_CONNECTIONS`` (HTTP and database pool, default 64)
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa
from celery import Celery

from worker.providers.base import Delivery
from worker.providers.kombo import kombo_body
from worker.schemas import SubmissionIn

__all__ = ["Retryable", "app", "attempts", "create_tables", "deliver", "noop", "send_and_record"]

app = Celery("naive", broker=os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_default_queue=os.environ.get("NAIVE_QUEUE", "naive"),
    task_acks_late=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)

metadata = sa.MetaData()
attempts = sa.Table(
    "naive_attempt",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("submission_key", sa.String(255), nullable=False, index=True),
    sa.Column("http_status", sa.Integer),
    sa.Column("remote_id", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("latency_ms", sa.Float),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
)


class Retryable(Exception):
    """The provider said "later": 429 or 5xx."""


def create_tables(database_url: str) -> None:
    """Create ``naive_attempt`` if it does not exist."""
    engine = sa.create_engine(database_url)
    metadata.create_all(engine)
    engine.dispose()


@dataclass(frozen=True)
class Resources:
    """What the tasks share in one process: an HTTP client and a database engine."""

    client: httpx.Client
    engine: sa.Engine
    api_key: str


def build_resources(kombo_url: str, database_url: str, *, connections: int = 64, timeout_s: float = 30.0) -> Resources:
    """A pooled HTTP client for the Kombo endpoint and a pooled engine, both sized for ``connections`` threads."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    client = httpx.Client(base_url=kombo_url.rstrip("/") + "/", timeout=timeout_s, limits=limits)
    engine = sa.create_engine(database_url, pool_size=connections // 2, max_overflow=connections - connections // 2)
    return Resources(client, engine, os.environ.get("NAIVE_KOMBO_API_KEY", "sandbox-kombo-key"))


_lock = threading.Lock()


@cache
def _resources_unlocked() -> Resources:
    return build_resources(
        os.environ["NAIVE_KOMBO_URL"],
        os.environ["NAIVE_DATABASE_URL"],
        connections=int(os.environ.get("NAIVE_CONNECTIONS", "64")),
        timeout_s=float(os.environ.get("NAIVE_HTTP_TIMEOUT_S", "30")),
    )


def resources() -> Resources:
    """This process's resources, built on first use from the environment."""
    with _lock:
        return _resources_unlocked()


def send_and_record(res: Resources, submission: dict[str, Any]) -> httpx.Response:
    """POST the application and record the attempt (a transport error is recorded, then raised)."""
    item = SubmissionIn.model_validate(submission)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    try:
        response = res.client.post(
            f"ats/jobs/{quote(item.job_id, safe=':')}/applications",
            json=kombo_body(Delivery(item.idempotency_key, item.idempotency_key, item)),
            headers={"Authorization": f"Bearer {res.api_key}", "X-Integration-Id": item.integration_id or ""},
        )
    except httpx.TransportError as exc:
        _record(res.engine, item.idempotency_key, None, f"{type(exc).__name__}: {exc}", clock, started)
        raise
    _record(res.engine, item.idempotency_key, response, None, clock, started)
    return response


def _record(
    engine: sa.Engine,
    key: str,
    response: httpx.Response | None,
    error: str | None,
    clock: float,
    started: datetime,
) -> None:
    latency_ms = (time.perf_counter() - clock) * 1000
    remote_id = None
    if response is not None and response.status_code == 200:
        remote_id = (response.json().get("data") or {}).get("remote_id")
    elif response is not None:
        error = response.text[:500]
    with engine.begin() as conn:
        conn.execute(
            attempts.insert().values(
                submission_key=key,
                http_status=None if response is None else response.status_code,
                remote_id=remote_id,
                error=error,
                latency_ms=latency_ms,
                started_at=started,
                finished_at=datetime.now(UTC),
            )
        )


@app.task(  # type: ignore[untyped-decorator]
    name="naive.deliver",
    autoretry_for=(Retryable, httpx.TransportError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def deliver(submission: dict[str, Any]) -> None:
    """Deliver one application to Kombo; 429, 5xx and transport errors are retried by Celery."""
    response = send_and_record(resources(), submission)
    if response.status_code == 429 or response.status_code >= 500:
        raise Retryable(f"HTTP {response.status_code}")


@app.task(name="naive.noop")  # type: ignore[untyped-decorator]
def noop(submission_id: str) -> dict[str, Any]:
    """Stands in for the delivery; the memory benchmark only schedules it an hour ahead."""
    return {"id": submission_id}
