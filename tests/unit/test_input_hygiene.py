"""Control characters are refused at validation on every path, naming the field; secrets have a minimum length."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import submission_dict
from worker.admin.edits import apply_edits, parse_edit
from worker.config import MIN_SECRET_CHARS, Settings
from worker.errors import InvalidSubmission
from worker.intake.enqueue import parse_json_lines, validate_all
from worker.schemas import control_character, format_validation_error, is_reference

PERSON = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}
CV = {"name": "cv.pdf", "data": "QQ=="}


def problems(raw: Any) -> str:
    with pytest.raises(InvalidSubmission) as info:
        validate_all([raw], label="")
    return str(info.value)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"job_id": "job\x00"}, "job_id"),
        ({"integration_id": "greenhouse:\x01abc"}, "integration_id"),
        ({"idempotency_key": "key\x7f1"}, "idempotency_key"),
        ({"candidate": {**PERSON, "first_name": "A\x00da"}}, "candidate.first_name"),
        ({"candidate": {**PERSON, "last_name": "Love\x1blace"}}, "candidate.last_name"),
        ({"candidate": {**PERSON, "last_name": "Love\u0085lace"}}, "candidate.last_name"),
        ({"candidate": {**PERSON, "first_name": "Ada\nLovelace"}}, "candidate.first_name"),
        ({"candidate": {**PERSON, "email": "ada\x00@example.com"}}, "candidate.email"),
        ({"candidate": {**PERSON, "phone": "+44\x00 20"}}, "candidate.phone"),
        ({"candidate": {**PERSON, "cv": {**CV, "name": "cv\x00.pdf"}}}, "candidate.cv.name"),
        ({"candidate": {**PERSON, "cv": {**CV, "content_type": "application/\x00pdf"}}}, "candidate.cv.content_type"),
        ({"metadata": {"note": "a\x00b"}}, "metadata"),
        ({"metadata": {"no\x00te": "ab"}}, "metadata"),
    ],
)  # fmt: skip
def test_a_control_character_anywhere_is_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    message = problems(submission_dict(**overrides))
    assert message.startswith(f"{field}:"), message


def test_the_message_names_the_character_never_the_value() -> None:
    message = problems(submission_dict(candidate={**PERSON, "first_name": "Secret\x00Name"}))
    assert "U+0000" in message
    assert "Secret" not in message


def test_metadata_values_are_free_text_tabs_and_line_breaks_allowed() -> None:
    [item] = validate_all([submission_dict(metadata={"note": "line 1\r\nline 2\tend"})])
    assert item.metadata["note"] == "line 1\r\nline 2\tend"


def test_a_json_file_with_an_escaped_nul_is_an_invalid_submission() -> None:
    raw = parse_json_lines('{"provider": "kombo", "candidate": {"first_name": "A\\u0000"}}')
    assert "candidate.first_name: contains a control character (U+0000)" in problems(raw[0])


def test_requeue_set_refuses_a_control_character_naming_the_field() -> None:
    payload = submission_dict()
    with pytest.raises(InvalidSubmission, match=r"candidate\.first_name: contains a control character \(U\+0000\)"):
        apply_edits(payload, [parse_edit("candidate.first_name=A\x00da")])


@pytest.mark.parametrize(
    ("text", "free_text", "found"),
    [("plain", False, None), ("tab\there", False, "U+0009"), ("tab\there", True, None), ("a\x00", True, "U+0000"),
     ("del\x7f", True, "U+007F"), ("c1\x9b", True, "U+009B"), ("lone\ud800", True, "U+D800"), ("Jörg", False, None)],
)  # fmt: skip
def test_control_character(text: str, free_text: bool, found: str | None) -> None:
    assert control_character(text, free_text=free_text) == found


def test_a_reference_is_checked_before_a_database_sees_it() -> None:
    assert is_reference("0f8e7c1e-2d4b-4b9a-9f41-2c1e6f6b1a11")
    assert is_reference("jobboard-application-981")
    assert not is_reference("")
    assert not is_reference("key\x00")
    assert not is_reference("k" * 256)


def settings_error(**values: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(**values)
    return format_validation_error(info.value)


def test_short_api_tokens_are_refused_by_position_never_shown() -> None:
    message = settings_error(api_tokens=f"tiny,{'x' * MIN_SECRET_CHARS}")
    assert message == "api_tokens: token number 1 (of 2) has fewer than 16 characters"
    assert "tiny" not in message
    assert len(Settings(api_tokens=f"{'a' * 16} {'b' * 40}").api_tokens) == 2


def test_a_short_webhook_secret_is_refused() -> None:
    assert settings_error(webhook_secret="short") == "webhook_secret: has fewer than 16 characters"
    assert Settings(webhook_secret="w" * 16).webhook_secret.get_secret_value() == "w" * 16


def test_api_limits_are_validated_when_read() -> None:
    assert settings_error(api_rate_limit="lots").startswith("api_rate_limit: rate 'lots'")
    assert settings_error(api_max_body_bytes=10).startswith("api_max_body_bytes:")
