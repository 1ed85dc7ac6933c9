"""The Celery boundary: messages carry ids only; settings are the at-least-once ones."""

from __future__ import annotations

import json
import uuid

from tests.conftest import submission_dict
from worker.config import Settings
from worker.runtime.pipeline import Outcome
from worker.runtime.tasks import TASK_NAME, CeleryPublisher, celery_config, create_celery, summarize

IDS = [f"3f1c0d5e-0000-4000-8000-00000000000{n}" for n in range(1, 4)]


def test_published_messages_carry_submission_ids_in_batches_and_nothing_else(settings: Settings) -> None:
    # kombu's memory:// transport is one per process: a queue of its own, so no other test's message is read
    settings = settings.model_copy(update={"batch_size": 2, "queue": f"applyq-{uuid.uuid4().hex[:8]}"})
    app = create_celery(settings, "memory://")
    CeleryPublisher(app).publish(IDS)
    bodies, headers = [], []
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(settings.queue)
        for _ in range(2):
            message = queue.get(timeout=2)
            bodies.append(message.decode())
            headers.append(message.headers)
            message.ack()
        queue.close()
    assert [h["task"] for h in headers] == [TASK_NAME, TASK_NAME]
    assert [(args, kwargs) for args, kwargs, _ in bodies] == [([IDS[:2]], {}), ([IDS[2:]], {})]
    everything = json.dumps([bodies, [{k: str(v) for k, v in h.items()} for h in headers]])
    candidate = submission_dict()["candidate"]
    assert not any(str(value) in everything for value in candidate.values())


def test_a_task_result_names_decisions_and_codes_only() -> None:
    one = [Outcome("park", "REMOTE.INPUT_INVALID", "parked")]
    assert summarize(one) == {"decision": "park", "code": "REMOTE.INPUT_INVALID", "status": "parked"}
    many = [*one, Outcome("success", None, "succeeded"), Outcome("skipped")]
    summary = {"count": 3, "decisions": {"park": 1, "success": 1, "skipped": 1}, "codes": {"REMOTE.INPUT_INVALID": 1}}
    assert summarize(many) == summary


def test_no_message_can_outlive_the_visibility_timeout(settings: Settings) -> None:
    conf = celery_config(settings, "redis://x")
    timeout = conf["broker_transport_options"]["visibility_timeout"]
    assert timeout == conf["visibility_timeout"] == conf["result_backend_transport_options"]["visibility_timeout"]
    assert timeout > settings.lease_s
    assert conf["task_acks_late"] and conf["worker_prefetch_multiplier"] == 1
    assert conf["worker_cancel_long_running_tasks_on_connection_loss"]
