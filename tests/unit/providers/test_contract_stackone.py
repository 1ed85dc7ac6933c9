"""StackOne's OpenAPI document checks both sides: every request the adapter builds, every sandbox answer."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.conftest import SPECS
from tests.unit.local.roundtrip import Box, delivery, sandbox
from tests.unit.providers.test_stackone_adapter import stackone_submission
from worker.providers.stackone import StackOneAdapter

STACKONE_HOST = "https://api.stackone.com"
PATH = "/unified/ats/applications"
PDF = base64.b64encode(b"%PDF-1.4 fake").decode()
#: Sandbox answers that are not StackOne JSON on purpose (a load balancer's page, a cut or empty body).
NOT_JSON = ("lb503x", "truncated", "empty")


@pytest.fixture(scope="module")
def stackone_spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPECS / "stackone-ats-create-application.openapi.json"))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def as_openapi(request: httpx.Request) -> MockRequest:
    """The request as openapi-core sees it: the spec's server as host, the full path."""
    return MockRequest(
        STACKONE_HOST,
        request.method.lower(),
        request.url.raw_path.decode(),
        headers=dict(request.headers),
        data=request.content,
        content_type=request.headers.get("content-type"),
    )


def person(**extra: Any) -> dict[str, Any]:
    return {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", **extra}


#: Every field of the full application a StackOne submission can carry.
FULL: dict[str, Any] = {
    "candidate": person(
        phone="+1 555 0100", company="Acme", title="Engineer", location={"country": "GB"},
        links=[{"url": "https://www.linkedin.com/in/ada", "type": "linkedin"}, {"url": "https://ada.dev"}],
        cv={"name": "cv.pdf", "data": PDF},
    ),
    "attachments": [
        {"kind": "cover_letter", "name": "letter.pdf", "data": PDF},
        {"kind": "other", "name": "notes.txt", "content_type": "text/plain", "data": PDF},
    ],
    "screening_answers": [
        {"question_id": "right_to_work", "answer": "Yes", "questionnaire_id": "qn-1"},
        {"question_id": "relocate", "answer": False, "questionnaire_id": "qn-1"},
        {"question_id": "years", "answer": 5, "questionnaire_id": "qn-2"},
    ],
    "source": {"name": "Example Job Board", "id": "src-1"},
    "provider_fields": {
        "stackone": {
            "job_posting_id": "1c702a20-8de8-4d03-ac18-cbf4ac42eb51",
            "location_id": "dd8d41d1-5eb8-4408-9c87-9ba44604eae4",
            "passthrough": {"other_known_names": "A. Lovelace"},
            "candidate_passthrough": {"pronouns": "she/her"},
            "unified_custom_fields": {"referral_code": "REF-1236"},
        }
    },
}  # fmt: skip


def build(**overrides: Any) -> httpx.Request:
    client = httpx.Client(base_url=STACKONE_HOST + "/")
    return StackOneAdapter(client, "key").build_request(delivery(stackone_submission(**overrides)))


VARIANTS: dict[str, dict[str, Any]] = {
    "minimal": {},
    "with phone": {"candidate": person(phone="+44 20 7946 0000")},
    "pdf cv": {"candidate": person(cv={"name": "cv.pdf", "data": PDF})},
    "docx cv": {
        "candidate": person(
            cv={
                "name": "cv.docx",
                "data": PDF,
                "content_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            }
        )
    },
    "cv of unknown type": {"candidate": person(cv={"name": "cv", "data": PDF, "content_type": "x/y"})},
    "everything": {
        "candidate": person(phone="+1 555 0100", cv={"name": "cv.txt", "data": PDF, "content_type": "text/plain"})
    },
    "opaque account id": {"integration_id": "45355976281015164504"},
    "job id with slash and unicode": {"job_id": "req/2026-Ü"},
    "full application": FULL,
    "answers of every type, no questionnaire": {
        "screening_answers": [
            {"question_id": "q-text", "answer": "Yes"},
            {"question_id": "q-bool", "answer": True},
            {"question_id": "q-num", "answer": 2.5},
            {"question_id": "q-multi", "answer": ["o1", "o2"]},
        ]
    },
}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_stackone_requests_validate_against_the_vendor_spec(stackone_spec: OpenAPI, variant: str) -> None:
    request = build(**VARIANTS[variant])

    stackone_spec.validate_request(as_openapi(request))
    assert request.url.path == PATH


@pytest.mark.parametrize(
    "broken",
    [
        {"drop_header": "x-account-id"},
        {"drop_header": "authorization"},
        {"body": {"job_id": "j", "candidate": "Ada"}},
        {"body": {"job_id": 7, "candidate": person()}},
        {"body": {"candidate": person(phone_numbers=[{"phone": "1", "type": "pager"}])}},
    ],
    ids=[
        "no account header",
        "no basic auth",
        "candidate not an object",
        "job id not a string",
        "phone type not in enum",
    ],
)
def test_the_validator_does_catch_a_broken_request(stackone_spec: OpenAPI, broken: dict[str, Any]) -> None:
    good = build()
    headers = {k: v for k, v in good.headers.items() if k not in ("content-length", broken.get("drop_header"))}
    request = httpx.Request("POST", good.url, headers=headers, json=broken.get("body", json.loads(good.content)))

    with pytest.raises(Exception, match=r"(?i)valid|missing|security"):
        stackone_spec.validate_request(as_openapi(request))


# --- the sandbox's answers ------------------------------------------------------------------------


def assert_matches_spec(spec: OpenAPI, request: httpx.Request, response: httpx.Response) -> None:
    """The sandbox's response is a valid answer of ``POST /unified/ats/applications``."""
    mock = MockResponse(
        response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=response.headers["content-type"],
    )
    spec.validate_response(as_openapi(request), mock)


#: (job id, email, expected HTTP statuses of two attempts at the same application). StackOne has no duplicate
#: check: a second POST after a creation creates again (201).
SCENARIOS: list[tuple[str, str, list[int]]] = [
    ("ok--j", "ada@example.com", [201, 201]),
    ("ratelimit--j", "ada@example.com", [429, 201]),
    ("concurrency--j", "ada@example.com", [429, 201]),
    ("unavailable--j", "ada@example.com", [502, 201]),
    ("syncpending--j", "ada@example.com", [502, 201]),
    ("nullcode--j", "ada@example.com", [502, 201]),
    ("hang--j", "ada@example.com", [502, 201]),
    ("slowcreate--j", "ada@example.com", [201, 201]),
    ("timedout--j", "ada@example.com", [408, 201]),
    ("closed--j", "ada@example.com", [400, 400]),
    ("applied--j", "ada@example.com", [409, 409]),
    ("permission--j", "ada@example.com", [403, 403]),
    ("reauth--j", "ada@example.com", [401, 401]),
    ("unknowncode--j", "ada@example.com", [501, 501]),
    ("badinput--j", "ada@example.com", [400, 400]),
    ("ok--j", "ada@invalid.example", [422, 422]),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("job_id", "email", "statuses"), SCENARIOS, ids=[f"{j}:{e}" for j, e, _ in SCENARIOS])
async def test_every_json_answer_of_the_sandbox_validates_against_the_spec(
    stackone_spec: OpenAPI, job_id: str, email: str, statuses: list[int]
) -> None:
    data = stackone_submission(job_id=job_id, candidate=person(email=email))
    async with sandbox() as box:
        answers = [await box.send(box.stackone, delivery(data)) for _ in statuses]

    assert [a.response.status_code for a in answers] == statuses
    for answer in answers:
        assert_matches_spec(stackone_spec, answer.request, answer.response)


async def _refused(box: Box, **headers: str | None) -> httpx.Response:
    request = box.stackone.build_request(delivery(stackone_submission()))
    for name, value in headers.items():
        name = name.replace("_", "-")
        if value is None:
            del request.headers[name]
        else:
            request.headers[name] = value
    return await box.client.send(request)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"authorization": "Basic " + base64.b64encode(b"wrong:").decode()}, 401),
        ({"authorization": None}, 401),
        ({"user_agent": ""}, 403),
        ({"x_account_id": None}, 400),
    ],
    ids=["wrong key", "no auth", "no user agent", "no account"],
)
async def test_stackones_own_refusals_validate_and_carry_no_provider_errors(
    stackone_spec: OpenAPI, headers: dict[str, str | None], status: int
) -> None:
    async with sandbox() as box:
        response = await _refused(box, **headers)

    assert response.status_code == status
    assert "provider_errors" not in response.json()
    mock = MockResponse(response.content, status_code=status, content_type="application/json")
    stackone_spec.validate_response(as_openapi(build()), mock)


def test_the_validator_does_catch_a_broken_response(stackone_spec: OpenAPI) -> None:
    broken = MockResponse(b'{"statusCode": 409, "message": "m"}', status_code=409, content_type="application/json")

    with pytest.raises(Exception, match=r"(?i)invalid"):
        stackone_spec.validate_response(as_openapi(build()), broken)


def test_the_full_application_reaches_stackone_in_its_fields() -> None:
    body = json.loads(build(**FULL).content)

    assert [d["category"] for d in body["documents"]] == [
        {"value": "resume"}, {"value": "cover_letter"}, {"value": "other"}
    ]  # fmt: skip
    assert body["questionnaires"] == [
        {"id": "qn-1", "answers": [
            {"id": "right_to_work", "values": ["Yes"]},
            {"id": "relocate", "type": {"value": "boolean"}, "values": ["false"]},
        ]},
        {"id": "qn-2", "answers": [{"id": "years", "type": {"value": "number"}, "values": ["5"]}]},
    ]  # fmt: skip
    assert body["source"] == {"id": "src-1", "name": "Example Job Board"}
    assert body["job_posting_id"] == "1c702a20-8de8-4d03-ac18-cbf4ac42eb51"
    assert body["passthrough"] == {"other_known_names": "A. Lovelace"}
    candidate = body["candidate"]
    assert candidate["passthrough"] == {"pronouns": "she/her"}
    assert candidate["unified_custom_fields"] == {"referral_code": "REF-1236"}
    assert candidate["country"] == "GB"
    assert candidate["social_links"] == [
        {"url": "https://www.linkedin.com/in/ada", "type": "linkedin"}, {"url": "https://ada.dev/"}
    ]  # fmt: skip
