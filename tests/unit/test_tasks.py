"""The Celery boundary: messages carry ids only; settings are the at-least-once ones."""

from __future__ import annotations

import json

from tests.conftest import submission_dict
from worker.config import Settings
from worker.tasks import TASK_NAME, CeleryPublisher, celery_config, create_celery


def test_a_published_message_carries_the_submission_id_and_nothing_else(settings: Settings) -> None:
    app = create_celery(settings, "memory://")
    CeleryPublisher(app).publish(["3f1c0d5e-0000-4000-8000-000000000001"])
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(settings.queue)
        message = queue.get(timeout=2)
        args, kwargs, _ = message.decode()
        headers = message.headers
        message.ack()
        queue.close()
    assert (headers["task"], args, kwargs) == (TASK_NAME, ["3f1c0d5e-0000-4000-8000-000000000001"], {})
    everything = json.dumps([args, kwargs, {k: str(v) for k, v in headers.items()}])
    candidate = submission_dict()["candidate"]
    assert not any(str(value) in everything for value in candidate.values())


def test_no_message_can_outlive_the_visibility_timeout(settings: Settings) -> None:
    conf = celery_config(settings, "redis://x")
    timeout = conf["broker_transport_options"]["visibility_timeout"]
    assert timeout == conf["visibility_timeout"] == conf["result_backend_transport_options"]["visibility_timeout"]
    assert timeout > settings.lease_s
    assert conf["task_acks_late"] and conf["worker_prefetch_multiplier"] == 1
    assert conf["worker_cancel_long_running_tasks_on_connection_loss"]
