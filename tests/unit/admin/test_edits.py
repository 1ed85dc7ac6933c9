"""Parsing operator input: durations, --since, --set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import NOW, submission_dict
from worker.admin.edits import Edit, apply_edits, parse_duration, parse_edit, parse_since
from worker.errors import InvalidInput, InvalidSubmission


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)), ("30m", timedelta(minutes=30)),
     ("45s", timedelta(seconds=45)), ("2w", timedelta(days=14)), ("1.5h", timedelta(minutes=90))],
)  # fmt: skip
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "-1d", "3 months"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="is not a duration"):
        parse_duration(text)


def test_since_is_a_duration_ago_or_an_iso_time() -> None:
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("2026-11-01T08:00:00+01:00", NOW) == datetime(2026, 11, 1, 7, tzinfo=UTC)
    assert parse_since("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        parse_since("yesterday", NOW)


@pytest.mark.parametrize(
    ("text", "edit"),
    [
        ("candidate.email=ada@example.com", Edit(("candidate", "email"), "ada@example.com")),
        ("job_id=12345", Edit(("job_id",), "12345")),
        ("candidate.phone:=null", Edit(("candidate", "phone"), None)),
        ("metadata.application_id:=981", Edit(("metadata", "application_id"), 981)),
        ('candidate.cv:={"name": "cv.pdf", "url": "https://x.test/cv.pdf"}',
         Edit(("candidate", "cv"), {"name": "cv.pdf", "url": "https://x.test/cv.pdf"})),
    ],
)  # fmt: skip
def test_set_takes_strings_or_json(text: str, edit: Edit) -> None:
    assert parse_edit(text) == edit


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("candidate.email", "expected FIELD=VALUE"),
        (
            "provider=celper",
            "only attachments, candidate, consent, integration_id, job_id, metadata, provider_fields, "
            "screening_answers, source can be edited",
        ),
        ("idempotency_key=x", "can be edited"),
        ("candidate..email=x", "not a dotted field name"),
        ("candidate.phone:=+44", "not valid JSON"),
    ],
)
def test_malformed_or_forbidden_edits_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_edit(text)


def test_edits_are_validated_like_a_new_submission() -> None:
    payload: dict[str, Any] = submission_dict()
    with pytest.raises(InvalidSubmission, match=r"candidate\.email"):
        apply_edits(payload, [parse_edit("candidate.email=nope")])
    with pytest.raises(InvalidSubmission, match=r"candidate\.nickname"):
        apply_edits(payload, [parse_edit("candidate.nickname=Ada")])
    with pytest.raises(InvalidSubmission, match="integration_id"):
        apply_edits(payload, [parse_edit("integration_id:=null")])


def test_only_fields_whose_value_changed_are_reported() -> None:
    payload = submission_dict()
    item, changed = apply_edits(payload, [parse_edit("candidate.email=ada@example.com"), parse_edit("job_id=ok--2")])
    assert changed == ["job_id"]
    assert item.job_id == "ok--2" and payload["job_id"] == "ok--job-1"  # the input is not modified
