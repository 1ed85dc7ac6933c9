"""``applyq api`` as a real process on PostgreSQL: idempotency answers, in-flight duplicates, then delivery."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tests.e2e.conftest import Stack, kombo_submission, running_api
from worker.db.models import Submission
from worker.intake.guard import Tokens
from worker.intake.http import ADVISORY_LOCK_CLASS, in_flight_name

pytestmark = pytest.mark.e2e

TOKEN = "e2e-api-token-0123456789"


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with running_api(stack, TOKEN, "api.log") as client:
        yield client


def split(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The idempotency key (for the header) and the body without it."""
    body = dict(payload)
    return body.pop("idempotency_key"), body


def post(api: httpx.Client, key: str, body: dict[str, Any]) -> httpx.Response:
    return api.post("/submissions", json=body, headers={"Idempotency-Key": f'"{key}"'})


def test_same_body_replays_different_body_is_422_and_the_worker_delivers_once(api: httpx.Client, stack: Stack) -> None:
    key, body = split(kombo_submission("ok--job"))
    first = post(api, key, body)
    assert first.status_code == 201, first.text
    replay = post(api, key, body)
    assert (replay.status_code, replay.json()["id"], replay.headers["idempotent-replayed"]) == (
        200,
        first.json()["id"],
        "true",
    )
    conflict = post(api, key, {**body, "job_id": body["job_id"] + "-other"})
    assert (conflict.status_code, conflict.json()["type"]) == (422, "/problems/idempotency-key-reused")

    stack.wait_final(first.json()["id"])
    outcome = api.get(f"/submissions/{first.json()['id']}").json()
    assert (outcome["status"], outcome["message"]) == ("succeeded", "Your application has been sent to the employer.")
    assert len(stack.sandbox_requests(body["job_id"])) == 1


def test_a_key_held_by_a_transaction_elsewhere_is_409_until_it_ends(api: httpx.Client, stack: Stack) -> None:
    key, body = split(kombo_submission("ok--job"))
    held = in_flight_name(str(Tokens([SecretStr(TOKEN)]).identify(f"Bearer {TOKEN}")), key)  # the token's key
    with stack.sessions() as other_api_process:  # takes the lock an API process holds while it stores the key
        other_api_process.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_CLASS, sa.func.hashtext(held))))
        busy = post(api, key, body)
        assert (busy.status_code, busy.headers["retry-after"]) == (409, "1")
        assert busy.json()["type"] == "/problems/idempotency-key-in-use"
    assert post(api, key, body).status_code == 201  # retried unchanged once the other request is done


def test_a_burst_of_identical_requests_stores_and_sends_one_application(api: httpx.Client, stack: Stack) -> None:
    key, body = split(kombo_submission("ok--job"))
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: post(api, key, body), range(12)))
    statuses = Counter(a.status_code for a in answers)
    assert statuses[201] == 1, statuses
    assert set(statuses) <= {200, 201, 409}, statuses
    assert len({a.json()["id"] for a in answers if a.status_code in (200, 201)}) == 1
    with stack.sessions() as session:
        ids = session.scalars(sa.select(Submission.id).where(Submission.idempotency_key == key)).all()
    assert len(ids) == 1
    stack.wait_final(ids[0])
    assert len(stack.sandbox_requests(body["job_id"])) == 1


def test_without_a_valid_token_nothing_is_stored(api: httpx.Client, stack: Stack) -> None:
    key, body = split(kombo_submission("ok--job"))
    answer = httpx.post(f"{api.base_url}/submissions", json=body, headers={"Idempotency-Key": key})
    assert (answer.status_code, answer.headers["content-type"]) == (401, "application/problem+json")
    with stack.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).where(Submission.idempotency_key == key)) == 0
