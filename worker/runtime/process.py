"""The long-running processes: a Celery worker (with the dispatcher and webhook delivery beside it), or a dispatcher."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory, is_postgres
from worker.db.heartbeats import Heartbeater
from worker.db.retention import Housekeeper
from worker.logs import configure_logging
from worker.runtime.bootstrap import build_runtime
from worker.runtime.broker import resolve_broker_url
from worker.runtime.dispatcher import run_dispatcher
from worker.runtime.tasks import CeleryPublisher, create_celery
from worker.webhooks.delivery import start_webhook_thread

__all__ = ["run_dispatcher_process", "run_worker"]


def run_worker(settings: Settings, *, concurrency: int | None, with_dispatcher: bool, hostname: str) -> None:
    """A Celery worker on a thread pool, with the dispatcher in a background thread."""

    configure_logging(settings.log_level)
    threads = concurrency or settings.worker_concurrency
    broker_url = resolve_broker_url(settings)
    runtime = build_runtime(settings, pool_size=threads, broker_url=broker_url)
    app = create_celery(settings, broker_url, runtime)
    stop = threading.Event()
    if with_dispatcher:
        _start_dispatcher_thread(settings, app, runtime.sessions, stop)
    if settings.webhook_url is not None:
        start_webhook_thread(settings, runtime.sessions, stop)
    try:
        queues = f"--queues={settings.queue},{settings.scheduled_queue}"
        # --quiet: no Celery banner on stdout; `applyq worker` prints its own one line (worker/cli/lifecycle.py)
        app.worker_main(
            ["--quiet", "worker", "--pool=threads", f"--concurrency={threads}", f"--hostname={hostname}", queues,
             "--loglevel=INFO", "--task-events", "--without-gossip", "--without-mingle"]
        )  # fmt: skip
    finally:
        stop.set()


def _start_dispatcher_thread(settings: Settings, app: Any, sessions: Any, stop: threading.Event) -> None:

    thread = threading.Thread(
        target=run_dispatcher,
        args=(sessions, CeleryPublisher(app, settings.scheduled_queue), settings, stop),
        kwargs={
            "skip_locked": is_postgres(settings.database_url),
            "heartbeat": _beat_and_housekeep(settings, sessions),
        },
        name="applyq-dispatcher",
        daemon=True,
    )
    thread.start()


def run_dispatcher_process(settings: Settings) -> None:
    """Only the dispatcher, until SIGINT/SIGTERM."""

    configure_logging(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sessions = create_session_factory(
        create_engine(settings.database_url, pool_size=2, pooler=settings.database_pooler)
    )
    publisher = CeleryPublisher(create_celery(settings, resolve_broker_url(settings)), settings.scheduled_queue)
    run_dispatcher(
        sessions, publisher, settings, stop,
        skip_locked=is_postgres(settings.database_url),
        heartbeat=_beat_and_housekeep(settings, sessions),
    )  # fmt: skip


def _beat_and_housekeep(settings: Settings, sessions: Any) -> Callable[[], None]:
    """After each dispatcher pass: the heartbeat, then the chores (tallies folded; pruning if configured)."""
    beat = Heartbeater(sessions, "dispatcher", every_s=5.0).beat
    housekeep = Housekeeper(sessions, prune_older_than_s=settings.prune_older_than_s)

    def after_pass() -> None:
        beat()
        housekeep()

    return after_pass
