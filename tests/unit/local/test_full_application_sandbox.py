"""The sandbox takes a full application like the vendor, and answers Kombo's pre-flight per integration."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import submission_dict
from tests.unit.local.roundtrip import BASE, sandbox
from tests.unit.providers.test_contract_kombo import FULL as KOMBO_FULL
from tests.unit.providers.test_contract_stackone import FULL as STACKONE_FULL
from tests.unit.providers.test_stackone_adapter import stackone_submission
from worker.local.sandbox import SandboxConfig
from worker.providers.base import Delivery
from worker.providers.kombo import KomboAdapter
from worker.providers.stackone import StackOneAdapter
from worker.schemas import SubmissionIn

CONFIG = SandboxConfig(hang_s=0.05)
NO_COVER_LETTERS = {
    "total_size_bytes": None,
    "types": {"CV": {"is_supported": True, "min_amount": None, "max_amount": None, "max_file_size_bytes": None,
                     "accepted_mime_types": None},
              "COVER_LETTER": {"is_supported": False}, "OTHER": {"is_supported": False}},
}  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def kombo_request(**overrides: Any) -> httpx.Request:
    adapter = KomboAdapter(httpx.Client(base_url=BASE + "/v1/"), CONFIG.kombo_api_key)
    return adapter.build_request(Delivery("s", "k", SubmissionIn.model_validate(submission_dict(**overrides))))


def with_body(request: httpx.Request, change: Any) -> httpx.Request:
    body = json.loads(request.content)
    change(body)
    headers = {k: v for k, v in request.headers.items() if k != "content-length"}
    return httpx.Request("POST", request.url, headers=headers, json=body)


@pytest.mark.anyio
async def test_a_full_kombo_application_is_created_and_logged_as_sent() -> None:
    request = kombo_request(**KOMBO_FULL)
    async with sandbox(CONFIG) as box:
        response = await box.client.send(request)
        [logged] = await box.get("/_sandbox/requests")

    assert response.status_code == 200, response.text
    assert logged["body"] == json.loads(request.content)


@pytest.mark.anyio
async def test_the_pre_flight_answers_what_the_integration_was_given_and_its_posts_obey_it() -> None:
    request = kombo_request(**KOMBO_FULL)
    integration = request.headers["x-integration-id"]
    async with sandbox(CONFIG) as box:
        before = await box.client.get("/v1/ats/actions/ats_create_application", headers=dict(request.headers))
        put = await box.client.put(f"/_sandbox/kombo/restrictions/{integration}", json=NO_COVER_LETTERS)
        after = await box.client.get("/v1/ats/actions/ats_create_application", headers=dict(request.headers))
        refused = await box.client.send(request)
        only_cv = with_body(request, lambda b: b.update(attachments=b["attachments"][:1]))
        accepted = await box.client.send(only_cv)

    assert before.json() == {"status": "success", "data": {"attachment_restrictions": None}}
    assert put.status_code == 200
    assert after.json()["data"]["attachment_restrictions"] == NO_COVER_LETTERS
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "REMOTE.INPUT_INVALID"
    assert "COVER_LETTER" in refused.json()["error"]["message"]
    assert accepted.status_code == 200


@pytest.mark.anyio
async def test_restrictions_that_are_not_kombos_shape_are_refused() -> None:
    async with sandbox(CONFIG) as box:
        response = await box.client.put("/_sandbox/kombo/restrictions/int-1", json={"types": {"CV": {}}})
    assert response.status_code == 400 and "COVER_LETTER" in response.json()["error"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["attachments"][0].update(type="RESUME"), "attachments[0].type"),
        (lambda b: b["attachments"][0].update(data_url="https://x.test/cv.pdf"), "attachments[0]"),
        (lambda b: b["screening_question_answers"][0].pop("answer"), "screening_question_answers[0]"),
        (lambda b: b["gdpr_consent"].update(expires_at="2027-06-01T12:00:00+02:00"), "gdpr_consent.expires_at"),
        (lambda b: b["candidate"]["location"].update(country="de"), "candidate.location.country"),
        (lambda b: b.update(sourced_by={}), "sourced_by.user_id"),
    ],
)
async def test_kombo_refuses_a_field_its_spec_does_not_allow(change: Any, field: str) -> None:
    async with sandbox(CONFIG) as box:
        response = await box.client.send(with_body(kombo_request(**KOMBO_FULL), change))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "PLATFORM.INPUT_INVALID"
    assert f'"{field}' in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_a_full_stackone_application_is_created_and_a_bad_answer_refused() -> None:
    adapter = StackOneAdapter(httpx.Client(base_url=BASE + "/"), CONFIG.stackone_api_key)
    delivery = Delivery("s", "k", SubmissionIn.model_validate(stackone_submission(**STACKONE_FULL)))
    request = adapter.build_request(delivery)
    async with sandbox(CONFIG) as box:
        created = await box.client.send(request)
        bad = with_body(request, lambda b: b["questionnaires"][0]["answers"][0].update(values="Yes"))
        refused = await box.client.send(bad)

    assert created.status_code == 201, created.text
    assert refused.status_code == 400 and "questionnaires[0].answers[0].values" in refused.json()["message"]
