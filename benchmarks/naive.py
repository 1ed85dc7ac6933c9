"""The naive peer: a plain Celery task as one would write it without applyq (the benchmarks' baseline).

Run as ``celery -A benchmarks.naive worker``; configured from ``NAIVE_BROKER_URL`` / ``NAIVE_QUEUE``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

app = Celery("naive", broker=os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_default_queue=os.environ.get("NAIVE_QUEUE", "naive"),
    task_acks_late=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)


@app.task(name="naive.noop")  # type: ignore[untyped-decorator]
def noop(submission_id: str) -> dict[str, Any]:
    """Stands in for the delivery; the memory benchmark only schedules it an hour ahead."""
    return {"id": submission_id}
