"""The full application through a real worker: Kombo's pre-flight, screening answers and several files."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.conftest import Stack, kombo_submission
from worker.db.models import Submission

pytestmark = pytest.mark.e2e

SUPPORTED = {"is_supported": True, "min_amount": None, "max_amount": None, "max_file_size_bytes": None,
             "accepted_mime_types": None}  # fmt: skip
CV = {"name": "ada-cv.pdf", "data": base64.b64encode(b"%PDF-1.4 Ada's CV").decode()}
LETTER = {"kind": "cover_letter", "name": "letter.pdf", "data": base64.b64encode(b"%PDF-1.4 Dear team").decode()}
PORTFOLIO = {"kind": "other", "name": "portfolio.pdf", "data": base64.b64encode(b"%PDF-1.4 work").decode()}
ANSWERS = [
    {"question_id": "3phFBNXRweGnDmsU9o2vdPuQ", "answer": "Yes"},
    {"question_id": "EYJjhMQT3LtVKXnTbnRT8s6U", "answer": ["GUzE666zfyjeoCJX6A8n7wh6", "5WPHzzKAv8cx97KtHRUV96U8"]},
    {"question_id": "years", "answer": 7},
]


def restrict(stack: Stack, integration_id: str, **types: Any) -> None:
    """What the integration's pre-flight will say: every type supported unless given."""
    restrictions = {"total_size_bytes": None, "types": {"CV": SUPPORTED, "COVER_LETTER": SUPPORTED,
                                                        "OTHER": SUPPORTED, **types}}  # fmt: skip
    response = httpx.put(f"{stack.sandbox_url}/_sandbox/kombo/restrictions/{integration_id}", json=restrictions)
    response.raise_for_status()


def show(stack: Stack, submission_id: str) -> dict[str, Any]:
    result = stack.cli("show", submission_id, "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def posts(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.sandbox_requests(job_id) if r["method"] == "POST"]


def test_an_integration_without_other_files_gets_the_application_less_that_file_with_a_warning(stack: Stack) -> None:
    payload = kombo_submission(
        "ok--full",
        candidate={**kombo_submission("x")["candidate"], "cv": CV},
        attachments=[LETTER, PORTFOLIO],
        screening_answers=ANSWERS,
        consent={"given": True, "expires_at": "2027-06-30T00:00:00Z"},
    )
    restrict(stack, payload["integration_id"], OTHER={"is_supported": False})

    submission_id = stack.submit(payload)
    stack.wait_final(submission_id)

    shown = show(stack, submission_id)
    assert shown["status"] == "succeeded"
    warnings = shown["attempts"][0]["details"]["warnings"]
    assert warnings[0] == (
        "attachment 3 (OTHER) left out: the integration does not support OTHER attachments (Kombo pre-flight)"
    )
    [post] = posts(stack, payload["job_id"])
    body = post["body"]
    assert [(a["type"], a["name"], a["data"]) for a in body["attachments"]] == [
        ("CV", CV["name"], CV["data"]), ("COVER_LETTER", LETTER["name"], LETTER["data"])
    ]  # fmt: skip
    assert body["screening_question_answers"] == ANSWERS
    assert body["gdpr_consent"] == {"given": True, "expires_at": "2027-06-30T00:00:00Z"}


def test_a_required_cv_parks_without_sending_until_set_adds_one(stack: Stack) -> None:
    payload = kombo_submission("ok--needcv", attachments=[LETTER], screening_answers=ANSWERS[:1])
    restrict(stack, payload["integration_id"], CV={**SUPPORTED, "min_amount": 1})

    submission_id = stack.submit(payload)
    stack.wait_final(submission_id)

    parked = show(stack, submission_id)
    assert (parked["status"], parked["outcome_code"]) == ("parked", "PREFLIGHT.REQUIREMENT_UNMET")
    assert "requires at least 1 CV" in parked["outcome_message"]
    assert "--set attachments=" in parked["remediation"]
    assert posts(stack, payload["job_id"]) == []

    attachments = json.dumps([{"kind": "cv", **CV}, LETTER])
    result = stack.cli("requeue", submission_id, "--set", f"attachments={attachments}", "--note", "CV added")
    assert result.returncode == 0, result.stderr
    stack.wait_final(submission_id)

    assert show(stack, submission_id)["status"] == "succeeded"
    [post] = posts(stack, payload["job_id"])
    assert [a["type"] for a in post["body"]["attachments"]] == ["CV", "COVER_LETTER"]


def test_an_oversized_attachment_is_refused_at_submission_and_nothing_stored(stack: Stack) -> None:
    big = {"kind": "other", "name": "video.pdf", "data": base64.b64encode(b"x" * 10_000_001).decode()}
    payload = kombo_submission("ok--big", attachments=[big], idempotency_key=f"e2e-big-{uuid.uuid4().hex[:8]}")

    result = stack.cli("submit", "--file", "-", stdin=json.dumps(payload))

    assert result.returncode == 2
    assert "attachments: the files add up to 10,000,001 bytes; kombo takes 10,000,000 at most" in result.stderr
    with stack.sessions() as session:
        stored = sa.select(sa.func.count()).where(Submission.idempotency_key == payload["idempotency_key"])
        assert session.scalar(stored) == 0
