"""Every request the Kombo adapter builds validates against Kombo's own OpenAPI document."""

from __future__ import annotations

import base64
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
}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_kombo_requests_validate_against_the_vendor_spec(kombo_spec: OpenAPI, variant: str) -> None:
    kombo_spec.validate_request(as_openapi(build(**VARIANTS[variant])))


def test_the_validator_does_catch_a_broken_request(kombo_spec: OpenAPI) -> None:
    request = build()
    broken = httpx.Request("POST", request.url, headers=request.headers, json={"candidate": {"first_name": "A"}})
    with pytest.raises(Exception, match=r"(?i)valid"):
        kombo_spec.validate_request(as_openapi(broken))
