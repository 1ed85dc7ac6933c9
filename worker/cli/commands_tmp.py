"""What the CLI commands do, as plain functions over settings (the CLI only parses arguments)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from rich.console import Console
from rich.table import Table

from worker.config import Settings
from worker.db import create_engine, create_session_factory
from worker.enqueue import enqueue, validate_all
from worker.logs import configure_logging
from worker.models import Submission
from worker.pipeline import utcnow
from worker.store import find_submission, list_submissions
from worker.views import submission_json

__all__ = [
    "get_status",
    "list_json",
    "render_list",
    "render_status",
    "run_dispatcher_process",
    "run_submit",
    "run_worker",
]


def run_submit(settings: Settings, raw: list[Any], *, label: str) -> list[Submission]:
    """Validate all, store atomically, publish the new ones; return the rows in input order."""
    from worker.tasks import CeleryPublisher, create_celery, resolve_broker_url

    items = validate_all(raw, label=label)
    sessions = create_session_factory(create_engine(settings.database_url, pool_size=2))
    publisher = CeleryPublisher(create_celery(settings, resolve_broker_url(settings)))
    return [s.submission for s in enqueue(sessions, publisher, items, utcnow())]


def get_status(settings: Settings, id_or_key: str) -> dict[str, Any] | None:
    """The submission with its attempts, or None."""
    sessions = create_session_factory(create_engine(settings.database_url, pool_size=1))
    with sessions() as session:
        row = find_submission(session, id_or_key)
        return None if row is None else submission_json(row, attempts=True)


def list_json(settings: Settings, *, status: str | None, provider: str | None, limit: int) -> list[Any]:
    """Submissions as JSON objects without attempts."""
    sessions = create_session_factory(create_engine(settings.database_url, pool_size=1))
    with sessions() as session:
        rows = list_submissions(session, status=status, provider=provider, limit=limit)
        return [submission_json(row) for row in rows]


def render_status(console: Console, data: dict[str, Any]) -> None:
    """A readable view of one submission and its attempts."""
    console.print(f"[bold]{data['id']}[/bold]  key={data['idempotency_key']}")
    for name in ("provider", "integration_id", "job_id", "status", "outcome_code", "outcome_reason",
                 "outcome_message", "remediation", "remote_id", "attempt_count", "next_attempt_at",
                 "created_at", "updated_at"):  # fmt: skip
        if data.get(name) is not None:
            console.print(f"  {name:16} {data[name]}", highlight=False, soft_wrap=True)
    table = Table("#", "started", "HTTP", "code", "decision", "reason", "delay s", "ms", "log / request id")
    for a in data["attempts"]:
        table.add_row(
            str(a["number"]), a["started_at"][11:23], str(a["http_status"] or "-"), a["error_code"] or "-",
            a["decision"] or "running", a["reason"] or "", _num(a["delay_s"]), _num(a["latency_ms"]),
            a["log_url"] or a["request_id"] or "",
        )  # fmt: skip
    console.print(table)


def render_list(console: Console, rows: list[dict[str, Any]]) -> None:
    """A table of submissions."""
    table = Table("id", "provider", "job", "status", "code", "attempts", "updated")
    for r in rows:
        table.add_row(
            r["id"], r["provider"], r["job_id"], r["status"], r["outcome_code"] or "",
            str(r["attempt_count"]), (r["updated_at"] or "")[:19],
        )  # fmt: skip
    console.print(table)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def run_worker(settings: Settings, *, concurrency: int | None, with_dispatcher: bool, hostname: str) -> None:
    """A Celery worker on a thread pool, with the dispatcher in a background thread."""
    from worker.bootstrap import build_runtime
    from worker.tasks import create_celery, resolve_broker_url

    configure_logging(settings.log_level)
    threads = concurrency or settings.worker_concurrency
    broker_url = resolve_broker_url(settings)
    runtime = build_runtime(settings, pool_size=threads, broker_url=broker_url)
    app = create_celery(settings, broker_url, runtime)
    stop = threading.Event()
    if with_dispatcher:
        _start_dispatcher_thread(settings, app, runtime.sessions, stop)
    if settings.webhook_url is not None:
        from worker.webhook_delivery import start_webhook_thread

        start_webhook_thread(settings, runtime.sessions, stop)
    try:
        queues = f"--queues={settings.queue},{settings.scheduled_queue}"
        app.worker_main(
            ["worker", "--pool=threads", f"--concurrency={threads}", f"--hostname={hostname}", queues,
             "--loglevel=INFO", "--task-events", "--without-gossip", "--without-mingle"]
        )  # fmt: skip
    finally:
        stop.set()


def _start_dispatcher_thread(settings: Settings, app: Any, sessions: Any, stop: threading.Event) -> None:
    from worker.dispatcher import run_dispatcher
    from worker.health import Heartbeater
    from worker.tasks import CeleryPublisher

    thread = threading.Thread(
        target=run_dispatcher,
        args=(sessions, CeleryPublisher(app, settings.scheduled_queue), settings, stop, utcnow),
        kwargs={
            "skip_locked": settings.database_url.startswith("postgresql"),
            "heartbeat": Heartbeater(sessions, "dispatcher", utcnow, every_s=5.0).beat,
        },
        name="applyq-dispatcher",
        daemon=True,
    )
    thread.start()


def run_dispatcher_process(settings: Settings) -> None:
    """Only the dispatcher, until SIGINT/SIGTERM."""
    from worker.dispatcher import run_dispatcher
    from worker.health import Heartbeater
    from worker.tasks import CeleryPublisher, create_celery, resolve_broker_url

    configure_logging(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sessions = create_session_factory(create_engine(settings.database_url, pool_size=2))
    publisher = CeleryPublisher(create_celery(settings, resolve_broker_url(settings)), settings.scheduled_queue)
    run_dispatcher(
        sessions, publisher, settings, stop, utcnow,
        skip_locked=settings.database_url.startswith("postgresql"),
        heartbeat=Heartbeater(sessions, "dispatcher", utcnow, every_s=5.0).beat,
    )  # fmt: skip


def get_health(settings: Settings, *, max_idle_s: float, max_dispatcher_silence_s: float) -> dict[str, Any]:
    """The health verdict as JSON: ``ok``, ``problems`` and the facts behind them."""
    from worker.health import check_health

    sessions = create_session_factory(create_engine(settings.database_url, pool_size=1))
    with sessions() as session:
        report = check_health(
            session, utcnow(), max_idle_s=max_idle_s, max_dispatcher_silence_s=max_dispatcher_silence_s
        )
    return {"ok": report.ok, "problems": report.problems, **report.facts}


def get_limits(settings: Settings) -> list[dict[str, Any]]:
    """Traffic-control state per limit key: configured limits, adaptive rate, cooldown, breaker, in flight."""
    from worker.limiter import RedisLimiter, redis_client
    from worker.limits import resolve_spec
    from worker.tasks import resolve_broker_url

    rows = RedisLimiter(redis_client(resolve_broker_url(settings))).snapshot()
    configured = settings.limit_specs  # parsed once, not per row
    for row in rows:
        spec = resolve_spec(row["key"], configured)
        row["rate_per_s"] = round(spec.rate_per_s, 3) if spec.rate_per_s else None
        row["concurrency"] = spec.concurrency
    return rows


def limits_or_none(settings: Settings) -> list[dict[str, Any]] | None:
    """``get_limits``, or None when traffic control is off or its Redis cannot be reached."""
    import redis

    if not settings.traffic_control:
        return None
    try:
        return get_limits(settings)
    except (redis.RedisError, OSError, RuntimeError, ValueError):  # e.g. a memory:// broker in tests
        return None


def render_limits(console: Console, rows: list[dict[str, Any]]) -> None:
    """A table of limit keys."""
    table = Table("limit key", "rate/s", "adaptive rate/s", "concurrency", "in flight", "cooldown s", "breaker",
                  "backlog s")  # fmt: skip
    for r in rows:
        table.add_row(
            r["key"], _num(r["rate_per_s"]), _num(r["adaptive_rate_per_s"]), _num(r["concurrency"]),
            str(r["in_flight"]), _num(r["cooldown_s"]), r["breaker"], _num(r["backlog_s"]),
        )  # fmt: skip
    console.print(table)
