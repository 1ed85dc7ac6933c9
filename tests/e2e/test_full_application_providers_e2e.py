"""The full application to StackOne and Celper through a real worker, as each vendor received it in the sandbox;
what a vendor cannot carry, or not that much of, refused at submission (CLI exit 2, HTTP 422) with nothing stored.

Kombo's side (pre-flight, attachments, answers, consent) is in ``test_full_application_e2e.py``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from openapi_core import OpenAPI

from tests.conftest import SPECS
from tests.e2e.conftest import STACKONE_KEY, Stack, kombo_submission, running_api
from tests.e2e.test_celper_e2e import celper_submission
from tests.e2e.test_stackone_e2e import stackone_submission
from tests.unit.providers.test_contract_stackone import as_openapi
from worker.db.models import Submission

pytestmark = pytest.mark.e2e

TOKEN = "e2e-full-application-token"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


CV = {"name": "ada-cv.pdf", "data": b64(b"%PDF-1.4 Ada's CV")}
LETTER = {"kind": "cover_letter", "name": "letter.docx", "data": b64(b"PK Dear team"),
          "content_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}  # fmt: skip
ANSWERS = [
    {"question_id": "right_to_work", "answer": "Yes", "questionnaire_id": "qn-eligibility"},
    {"question_id": "relocate", "answer": False, "questionnaire_id": "qn-eligibility"},
    {"question_id": "years", "answer": 7},
    {"question_id": "languages", "answer": ["opt-en", "opt-de"]},
]
CONSENT = {"given": True, "expires_at": "2027-06-30T00:00:00Z"}
#: StackOne's application has no consent field: the job board sends it in the passthrough (worker/fit.py)
STACKONE_FIELDS = {
    "job_posting_id": "1c702a20-8de8-4d03-ac18-cbf4ac42eb51",
    "passthrough": {"gdpr_consent": CONSENT},
    "candidate_passthrough": {"pronouns": "she/her"},
    "unified_custom_fields": {"referral_code": "REF-1236"},
}


@pytest.fixture(scope="module")
def stackone_spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPECS / "stackone-ats-create-application.openapi.json"))


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    """``applyq api`` on the stack's database and queue."""
    with running_api(stack, TOKEN, "full-api.log", timeout_s=30) as client:
        yield client


def delivered(stack: Stack, payload: dict[str, Any]) -> dict[str, Any]:
    """Submit through the CLI, let the worker deliver; the one request the sandbox received for the job."""
    submission_id = stack.submit(payload)
    stack.wait_final(submission_id)
    assert stack.status(submission_id)["status"] == "succeeded"
    [request] = [r for r in stack.sandbox_requests(payload["job_id"]) if r["method"] == "POST"]
    return request


def submissions(stack: Stack) -> int:
    with stack.sessions() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(Submission)) or 0)


def refused_by_cli(stack: Stack, payload: dict[str, Any]) -> str:
    """``applyq submit`` refuses the payload (exit 2) and stores nothing; what it said."""
    before = submissions(stack)
    result = stack.cli("submit", "--file", "-", stdin=json.dumps(payload))
    assert result.returncode == 2, result.stdout + result.stderr
    assert submissions(stack) == before
    return result.stderr


def test_stackone_gets_questionnaires_documents_source_and_passthrough_in_its_spec_shape(
    stack: Stack, stackone_spec: OpenAPI
) -> None:
    # Given the full application, the consent where StackOne takes it
    candidate = {
        **stackone_submission("x")["candidate"], "phone": "+44 20 7946 0000", "cv": CV, "location": {"country": "GB"},
        "links": [{"url": "https://www.linkedin.com/in/ada", "type": "linkedin"}],
    }  # fmt: skip
    payload = stackone_submission(
        "ok--full", candidate=candidate, attachments=[LETTER], screening_answers=ANSWERS,
        source={"name": "Example Job Board", "id": "src-1"}, provider_fields={"stackone": STACKONE_FIELDS},
    )  # fmt: skip

    # When it is submitted and the worker delivers it
    request = delivered(stack, payload)

    # Then StackOne got it in its shape, valid against its spec
    body = request["body"]
    headers = {k: v for k, v in request["headers"].items() if k not in ("host", "content-length", "authorization")}
    credentials = b64(f"{STACKONE_KEY}:".encode())  # the log redacts them; the worker sent these (test_stackone_e2e)
    sent = httpx.Request(
        "POST", f"https://api.stackone.com{request['path']}", json=body,
        headers={**headers, "authorization": f"Basic {credentials}"},
    )  # fmt: skip
    stackone_spec.validate_request(as_openapi(sent))
    assert body["job_id"] == payload["job_id"]
    assert body["documents"] == [
        {"name": CV["name"], "content": CV["data"], "category": {"value": "resume"}, "file_format": {"value": "pdf"}},
        {"name": LETTER["name"], "content": LETTER["data"], "category": {"value": "cover_letter"},
         "file_format": {"value": "docx"}},
    ]  # fmt: skip
    assert body["questionnaires"] == [
        {"id": "qn-eligibility", "answers": [
            {"id": "right_to_work", "values": ["Yes"]},
            {"id": "relocate", "type": {"value": "boolean"}, "values": ["false"]},
        ]},
        {"answers": [
            {"id": "years", "type": {"value": "number"}, "values": ["7"]},
            {"id": "languages", "type": {"value": "multi_select"}, "values": ["opt-en", "opt-de"]},
        ]},
    ]  # fmt: skip
    assert body["source"] == {"name": "Example Job Board", "id": "src-1"}
    assert (body["job_posting_id"], body["passthrough"]) == (
        STACKONE_FIELDS["job_posting_id"],
        {"gdpr_consent": CONSENT},
    )
    assert body["candidate"] == {
        "first_name": "Ada", "last_name": "Lovelace", "email": candidate["email"],
        "phone_numbers": [{"phone": "+44 20 7946 0000"}], "country": "GB",
        "social_links": [{"url": "https://www.linkedin.com/in/ada", "type": "linkedin"}],
        "passthrough": {"pronouns": "she/her"}, "unified_custom_fields": {"referral_code": "REF-1236"},
    }  # fmt: skip


def test_stackone_refuses_a_consent_of_its_own_naming_where_it_goes(stack: Stack) -> None:
    payload = stackone_submission("ok--consent", consent=CONSENT, screening_answers=ANSWERS)

    said = refused_by_cli(stack, payload)

    assert "consent: StackOne's application has no consent field" in said
    assert "provider_fields.stackone.passthrough" in said


def test_celper_gets_its_flat_body_with_notes_and_skip_analysis_and_nothing_else(stack: Stack) -> None:
    # Given what Celper's candidate import takes: the CV as text, notes, skipAnalysis
    cv = {"name": "cv.txt", "content_type": "text/plain", "data": b64("Ada Lovelace — analyst".encode())}
    payload = celper_submission(
        "ok--full",
        candidate={**celper_submission("x")["candidate"], "phone": "+44 20 7946 0000", "cv": cv},
        provider_fields={"celper": {"notes": "Applied via Example Job Board.", "skipAnalysis": True}},
    )  # fmt: skip

    # When it is delivered, Then the body is Celper's, and only that
    body = delivered(stack, payload)["body"]
    assert body == {
        "jobPositionId": payload["job_id"], "firstName": "Ada", "lastName": "Lovelace",
        "email": payload["candidate"]["email"], "phone": "+44 20 7946 0000", "cvText": "Ada Lovelace — analyst",
        "notes": "Applied via Example Job Board.", "skipAnalysis": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("screening_answers", ANSWERS, "screening_answers: Celper's candidate import has no place for it"),
        ("consent", CONSENT, "consent: Celper's candidate import has no place for it"),
        ("attachments", [LETTER], "attachments: Celper takes one file, the CV as text, in candidate.cv"),
    ],
)
def test_celper_refuses_what_it_has_no_place_for_by_name(stack: Stack, field: str, value: Any, says: str) -> None:
    # answers, consent and a cover letter would not reach the ATS: the job board hears so at once
    assert says in refused_by_cli(stack, celper_submission("ok--refused", **{field: value}))


def oversized(provider: str) -> tuple[dict[str, Any], str, str]:
    """A submission one byte over its provider's limit (worker/fit.py); the field named, what is said of it."""
    key = f"e2e-big-{uuid.uuid4().hex[:8]}"
    if provider == "celper":  # Celper: the CV as text, ≤ 100 KB
        cv = {"name": "cv.txt", "content_type": "text/plain", "data": b64(b"x" * (100 * 1024 + 1))}
        payload = celper_submission("ok--big", idempotency_key=key)
        payload["candidate"]["cv"] = cv
        return payload, "candidate.cv", "Celper takes the CV as text: content_type text/plain, at most 100 KB"
    big = {"kind": "other", "name": "video.pdf", "data": b64(b"x" * 10_000_001)}
    make = stackone_submission if provider == "stackone" else kombo_submission
    payload = make("ok--big", attachments=[big], idempotency_key=key)
    return payload, "attachments", f"the files add up to 10,000,001 bytes; {provider} takes 10,000,000 at most"


@pytest.mark.parametrize("provider", ["stackone", "celper"])
def test_an_oversized_file_is_refused_by_the_cli_naming_the_field(stack: Stack, provider: str) -> None:
    payload, field, says = oversized(provider)

    assert f"{field}: {says}" in refused_by_cli(stack, payload)


@pytest.mark.parametrize("provider", ["kombo", "stackone", "celper"])
def test_an_oversized_file_is_refused_by_the_api_with_422_naming_the_field(
    stack: Stack, api: httpx.Client, provider: str
) -> None:
    payload, field, says = oversized(provider)
    key = payload.pop("idempotency_key")
    before = submissions(stack)

    answer = api.post("/submissions", json=payload, headers={"Idempotency-Key": key})

    assert (answer.status_code, answer.json()["type"]) == (422, "/problems/invalid-submission"), answer.text
    [error] = answer.json()["errors"]
    assert error["pointer"] == "#/" + field.replace(".", "/") and error["detail"].startswith(says), error
    assert submissions(stack) == before
