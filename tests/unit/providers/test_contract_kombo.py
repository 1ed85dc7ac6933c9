"""Every request the Kombo adapter builds validates against Kombo's own OpenAPI document."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from tests.conftest import submission_dict
from worker.providers.base import Delivery
from worker.providers.kombo import KomboAdapter
from worker.schemas import SubmissionIn

KOMBO_BASE = "https://api.kombo.dev/v1"


def build(**overrides: Any) -> httpx.Request:
    client = httpx.Client(base_url=KOMBO_BASE + "/")
    delivery = Delivery("s", "k", SubmissionIn.model_validate(submission_dict(**overrides)))
    return KomboAdapter(client, "key").build_request(delivery)


def as_openapi(request: httpx.Request) -> MockRequest:
    return MockRequest(
        f"{request.url.scheme}://{request.url.host}",
        request.method.lower(),
        request.url.raw_path.decode(),
        headers=dict(request.headers),
        data=request.content,
        content_type=request.headers["content-type"],
    )


CV_DATA = base64.b64encode(b"%PDF-1.4 fake").decode()
#: Every field of the full application a Kombo submission can carry.
FULL: dict[str, Any] = {
    "candidate": {
        "first_name": "A",
        "last_name": "B",
        "email": "a@b.co",
        "phone": "+49 30 1",
        "company": "Acme",
        "title": "Engineer",
        "location": {"country": "DE", "city": "Berlin", "state": "BE", "zip_code": "10115", "street": "Str. 1"},
        "links": [{"url": "https://www.linkedin.com/in/a", "type": "linkedin"}, {"url": "https://a.dev"}],
        "cv": {"name": "cv.pdf", "data": CV_DATA},
    },
    "attachments": [
        {"kind": "cover_letter", "name": "letter.pdf", "data": CV_DATA},
        {"kind": "other", "name": "portfolio.pdf", "url": "https://files.example.com/p.pdf"},
    ],
    "screening_answers": [{"question_id": "q1", "answer": "Yes"}, {"question_id": "q2", "answer": ["o1"]}],
    "consent": {"given": True, "expires_at": "2027-06-01T12:00:00+02:00"},
    "source": {"name": "Example Job Board", "id": "src-1"},
    "provider_fields": {
        "kombo": {
            "stage_id": "8x3YKRDcuRnwShdh96ShBNn1",
            "sourced_by": {"user_id": "remote:42"},
            "remote_fields": {
                "greenhouse": {"candidate": {"custom": 1}},
                "workable": {"on_behalf_of_user_remote_id": "7"},
            },
        }
    },
}
VARIANTS: dict[str, dict[str, Any]] = {
    "minimal": {},
    "with phone": {"candidate": {"first_name": "A", "last_name": "B", "email": "a@b.co", "phone": "+49 30 1"}},
    "cv as base64": {
        "candidate": {"first_name": "A", "last_name": "B", "email": "a@b.co", "cv": {"name": "cv.pdf", "data": CV_DATA}}
    },
    "cv as url": {
        "candidate": {
            "first_name": "A", "last_name": "B", "email": "a@b.co",
            "cv": {"name": "cv.pdf", "url": "https://files.example.com/cv.pdf"},
        }
    },
    "remote job id": {"job_id": "remote:12345"},
    "job id with slash": {"job_id": "weird/id"},
    "full application": FULL,
    "content type with parameters": {
        "attachments": [
            {"kind": "other", "name": "notes.txt", "content_type": "text/plain; charset=utf-8", "data": CV_DATA}
        ]
    },
    "consent without expiry, answers of every type": {
        "consent": {"given": False},
        "screening_answers": [
            {"question_id": "q-text", "answer": "Yes"},
            {"question_id": "q-bool", "answer": False},
            {"question_id": "q-int", "answer": 7},
            {"question_id": "q-float", "answer": 2.5},
            {"question_id": "q-multi", "answer": ["o1", "o2"]},
            {"question_id": "q-date", "answer": "2026-12-01"},
        ],
    },
}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_kombo_requests_validate_against_the_vendor_spec(kombo_spec: OpenAPI, variant: str) -> None:
    kombo_spec.validate_request(as_openapi(build(**VARIANTS[variant])))


def test_the_validator_does_catch_a_broken_request(kombo_spec: OpenAPI) -> None:
    request = build()
    broken = httpx.Request("POST", request.url, headers=request.headers, json={"candidate": {"first_name": "A"}})
    with pytest.raises(Exception, match=r"(?i)valid"):
        kombo_spec.validate_request(as_openapi(broken))


def test_the_full_application_reaches_kombo_in_its_fields() -> None:
    body = json.loads(build(**FULL).content)

    assert [a["type"] for a in body["attachments"]] == ["CV", "COVER_LETTER", "OTHER"]
    assert body["attachments"][2] == {
        "name": "portfolio.pdf", "type": "OTHER", "content_type": "application/pdf",
        "data_url": "https://files.example.com/p.pdf",
    }  # fmt: skip
    assert body["screening_question_answers"] == [
        {"question_id": "q1", "answer": "Yes"}, {"question_id": "q2", "answer": ["o1"]}
    ]  # fmt: skip
    assert body["gdpr_consent"] == {"given": True, "expires_at": "2027-06-01T10:00:00Z"}
    assert body["source"] == {"name": "Example Job Board", "id": "src-1"}
    assert body["stage_id"] == "8x3YKRDcuRnwShdh96ShBNn1"
    assert body["sourced_by"] == {"user_id": "remote:42"}
    assert body["remote_fields"]["greenhouse"] == {"candidate": {"custom": 1}}
    assert body["candidate"]["location"] == {
        "country": "DE", "city": "Berlin", "state": "BE", "street_1": "Str. 1", "zip_code": "10115"
    }  # fmt: skip
    assert body["candidate"]["social_links"] == [{"url": "https://www.linkedin.com/in/a"}, {"url": "https://a.dev/"}]


def test_the_pre_flight_request_validates_against_the_vendor_spec(kombo_spec: OpenAPI) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success", "data": {"attachment_restrictions": None}})

    client = httpx.Client(base_url=KOMBO_BASE + "/", transport=httpx.MockTransport(handler))
    delivery = Delivery("s", "k", SubmissionIn.model_validate(submission_dict(**FULL)))
    KomboAdapter(client, "key").deliver(delivery)

    preflight, post = seen
    assert (preflight.method, preflight.url.path) == ("GET", "/v1/ats/actions/ats_create_application")
    kombo_spec.validate_request(
        MockRequest(
            KOMBO_BASE.removesuffix("/v1"), "get", preflight.url.raw_path.decode(), headers=dict(preflight.headers)
        )
    )
    kombo_spec.validate_request(as_openapi(post))
