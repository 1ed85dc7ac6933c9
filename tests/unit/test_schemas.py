from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import submission_dict
from worker.errors import InvalidSubmission
from worker.intake.enqueue import parse_json_lines, validate_all

PERSON = {"first_name": "A", "last_name": "B", "email": "a@b.co"}


def problems(raw: Any) -> str:
    with pytest.raises(InvalidSubmission) as info:
        validate_all([raw], label="")
    return str(info.value)


def test_a_valid_submission_passes() -> None:
    [item] = validate_all([submission_dict()])
    assert item.candidate.email == "ada@example.com"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"provider": "workday"}, "provider"),
        ({"job_id": ""}, "job_id"),
        ({"idempotency_key": None}, "idempotency_key"),
        ({"candidate": {"first_name": "A", "last_name": "B", "email": "not-an-email"}}, "candidate.email"),
        ({"candidate": {"first_name": "", "last_name": "B", "email": "a@b.co"}}, "candidate.first_name"),
        ({"candidate": {"first_name": "A", "email": "a@b.co"}}, "candidate.last_name"),
        ({"candidate": {**PERSON, "phone": "call me"}}, "candidate.phone"),
        ({"candidate": {**PERSON, "cv": {"name": "cv.pdf", "data": "@@"}}},
         "candidate.cv.data"),
        ({"candidate": {**PERSON, "cv": {"name": "cv.pdf"}}},
         "candidate.cv"),
        ({"integration_id": None}, "integration_id"),
        ({"surprise": 1}, "surprise"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(overrides: dict[str, Any], field: str) -> None:
    assert f"{field}:" in problems(submission_dict(**overrides))


def test_celper_needs_no_integration_but_refuses_one() -> None:
    validate_all([submission_dict(provider="celper", integration_id=None)])
    assert "integration_id" in problems(submission_dict(provider="celper"))


def test_every_bad_item_of_a_file_is_reported_with_its_number() -> None:
    with pytest.raises(InvalidSubmission) as info:
        validate_all([submission_dict(), submission_dict(job_id=""), {"provider": "kombo"}], label="line")
    text = str(info.value)
    assert "line 2: job_id:" in text
    assert "line 3: candidate:" in text
    assert "line 1" not in text


def test_json_lines_and_a_single_pretty_object_are_both_read() -> None:
    assert parse_json_lines('{"a": 1}\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]
    assert parse_json_lines('{\n  "a": 1\n}\n') == [{"a": 1}]


def test_broken_json_lines_name_the_line() -> None:
    with pytest.raises(InvalidSubmission, match="line 2"):
        parse_json_lines('{"a": 1}\n{"a": \n')


def test_the_payload_hash_ignores_key_order() -> None:
    a = validate_all([submission_dict()])[0]
    b = validate_all([dict(reversed(list(submission_dict().items())))])[0]
    assert a.payload_hash() == b.payload_hash()
