"""The Celery app: one task, ``applyq.submit(submission_ids)``, whose only argument is a list of ids.

Settings chosen for at-least-once delivery with the database as the source of truth:

* ``task_acks_late``: a message is acknowledged after the attempt is recorded, so a worker killed
  mid-attempt leaves it in Redis to be redelivered (after ``visibility_timeout``).
* ``worker_prefetch_multiplier = 1``: a worker reserves no more messages than it can run.
* ``worker_cancel_long_running_tasks_on_connection_loss``: after a broker reconnect, late-ack tasks
  are not left running while Redis redelivers them.
* ``task_reject_on_worker_lost = False``: a lost child does not requeue the message forever; the
  database lease expires and the dispatcher publishes the submission again, which is bounded by the
  attempt limits.
* ``worker_send_task_events = False``: task events only while Flower (or ``celery control enable_events``)
  asks for them; the publisher's ``task-sent`` events are always on, so Flower sees each task from its queueing.
* ``visibility_timeout`` (the same value in every place Celery reads it) is longer than any attempt
  can run (HTTP timeout + lease margin), so a running task is never redelivered; no message ever waits
  in Redis for a future time: retries wait in the database (``next_attempt_at``), not as ETA messages.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from celery import Celery

from worker.config import Settings
from worker.runtime.bootstrap import build_runtime
from worker.runtime.pipeline import Outcome, Runtime, process_batch

__all__ = ["TASK_NAME", "CeleryPublisher", "create_celery", "summarize"]

TASK_NAME = "applyq.submit"


def celery_config(settings: Settings, broker_url: str) -> dict[str, Any]:
    """Celery settings; see the module docstring for why each is set."""
    visibility_timeout = int(max(300.0, 2 * settings.lease_s))
    transport = {"visibility_timeout": visibility_timeout}
    return {
        "broker_url": broker_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "visibility_timeout": visibility_timeout,
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.queue,
        "task_send_sent_event": True,
        # task events (received, started, succeeded: three Redis publishes per message) only while a monitor
        # asks for them (Celery's default): Flower does (worker/ops/flower.py); always on, they cost a busy
        # worker about a tenth of its CPU (make bench). Heartbeats (worker events) are sent either way.
        "worker_send_task_events": False,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "broker_pool_limit": 10,
        "applyq_batch_size": settings.batch_size,
    }


class _RuntimeHolder:
    """Builds the worker's Runtime once, on first use (after any fork), unless one was given."""

    def __init__(self, settings: Settings, runtime: Runtime | None) -> None:
        self._settings = settings
        self._runtime = runtime
        self._lock = threading.Lock()

    def get(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                self._runtime = build_runtime(self._settings)
            return self._runtime


def create_celery(settings: Settings, broker_url: str, runtime: Runtime | None = None) -> Celery:
    """The applyq Celery app with its one task registered."""
    app = Celery("applyq", set_as_current=False)
    app.conf.update(celery_config(settings, broker_url))
    holder = _RuntimeHolder(settings, runtime)

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def submit(submission_ids: list[str] | str) -> dict[str, Any]:
        """Run one attempt of each submission; the result names decisions and codes only."""
        # a single id is what messages published before batching carried: they still run after an upgrade
        ids = [submission_ids] if isinstance(submission_ids, str) else submission_ids
        return summarize(process_batch(holder.get(), ids))

    return app


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The task's result as Flower shows it: one outcome as is, a batch as counts per decision and code."""
    if len(outcomes) == 1:
        return outcomes[0].as_result()
    codes = Counter(o.code for o in outcomes if o.code)
    return {"count": len(outcomes), "decisions": dict(Counter(o.decision for o in outcomes)), "codes": dict(codes)}


class CeleryPublisher:
    """Publishes ``applyq.submit`` messages over one pooled broker connection (to ``queue``, else the default)."""

    def __init__(self, app: Celery, queue: str | None = None) -> None:
        self._app = app
        self._queue = queue
        self._batch_size = int(app.conf.get("applyq_batch_size") or 1)

    def publish(self, submission_ids: Sequence[str]) -> None:
        """One message per ``APPLYQ_BATCH_SIZE`` ids, in order; raises when the broker stays unreachable."""
        options = {"queue": self._queue} if self._queue else {}
        size = self._batch_size
        with self._app.producer_or_acquire() as producer:
            for start in range(0, len(submission_ids), size):
                ids = list(submission_ids[start : start + size])
                self._app.send_task(TASK_NAME, args=[ids], producer=producer, retry=True, **options)
