"""The full application: what SubmissionIn accepts, what each provider can carry, and ``--set`` on it."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, submission_dict
from tests.unit.admin.helpers import make, row
from worker.admin.edits import apply_edits, parse_edit
from worker.admin.purge import older_than, purge
from worker.admin.queries import audit_events
from worker.admin.views import show_json
from worker.errors import InvalidSubmission
from worker.fit import MAX_ATTACHMENT_BYTES, decoded_size
from worker.intake.enqueue import validate_all
from worker.schemas import AttachmentKind, SubmissionIn
from worker.states import Provider

PERSON = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}
PDF = base64.b64encode(b"%PDF-1.4 fake").decode()
ANSWERS = [{"question_id": "q1", "answer": "Yes"}, {"question_id": "q2", "answer": ["o1", "o2"]}]


def problems(**overrides: Any) -> str:
    with pytest.raises(InvalidSubmission) as info:
        validate_all([submission_dict(**overrides)], label="")
    return str(info.value)


def celper(**overrides: Any) -> dict[str, Any]:
    return {"provider": "celper", "integration_id": None, **overrides}


def stackone(**overrides: Any) -> dict[str, Any]:
    return {"provider": "stackone", "integration_id": "acc-1", **overrides}


def blob(size: int) -> str:
    return base64.b64encode(b"x" * size).decode()


def test_a_single_cv_submission_is_stored_as_it_always_was() -> None:
    item = SubmissionIn.model_validate(submission_dict(candidate={**PERSON, "cv": {"name": "cv.pdf", "data": PDF}}))

    assert set(item.payload()) == {"provider", "integration_id", "job_id", "idempotency_key", "candidate", "metadata"}
    assert set(item.payload()["candidate"]) == {"first_name", "last_name", "email", "phone", "cv"}


def test_the_full_application_is_accepted_and_keeps_every_file_in_order() -> None:
    item = SubmissionIn.model_validate(
        submission_dict(
            candidate={**PERSON, "cv": {"name": "cv.pdf", "data": PDF}, "location": {"country": "DE"}},
            attachments=[{"kind": "cover_letter", "name": "l.pdf", "data": PDF}, {"kind": "other", "name": "o.pdf",
                         "url": "https://files.example.com/o.pdf"}],
            screening_answers=ANSWERS,
            consent={"given": True, "expires_at": "2027-01-01T00:00:00Z"},
            source={"name": "Example Job Board"},
            provider_fields={"kombo": {"stage_id": "s1"}},
        )
    )  # fmt: skip

    assert [kind for kind, _ in item.files()] == [AttachmentKind.CV, AttachmentKind.COVER_LETTER, AttachmentKind.OTHER]
    assert SubmissionIn.model_validate(item.payload()) == item  # the stored form reads back the same


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (celper(screening_answers=ANSWERS), "screening_answers"),
        (celper(consent={"given": True}), "consent"),
        (celper(attachments=[{"kind": "cover_letter", "name": "l.txt", "data": PDF}]), "attachments"),
        (celper(candidate={**PERSON, "links": [{"url": "https://a.dev"}]}), "candidate.links"),
        (stackone(consent={"given": True}), "consent"),
        (stackone(candidate={**PERSON, "location": {"country": "GB", "city": "London"}}), "candidate.location.city"),
        (stackone(attachments=[{"kind": "other", "name": "o.pdf", "url": "https://f.example.com/o.pdf"}]),
         "attachments.0"),
        ({"provider_fields": {"stackone": {"job_posting_id": "p1"}}}, "provider_fields.stackone"),
        (celper(provider_fields={"celper": {"notes": "n" * (10 * 1024 + 1)}}), "provider_fields.celper.notes"),
        ({"attachments": [{"kind": "other", "name": f"{i}.pdf", "data": PDF} for i in range(11)]}, "attachments"),
        ({"screening_answers": [ANSWERS[0], ANSWERS[0]]}, "screening_answers"),
        ({"screening_answers": [{"question_id": "q", "answer": []}]}, "screening_answers.0.answer"),
        ({"screening_answers": [{"question_id": "q", "answer": {"file": 1}}]}, "screening_answers.0.answer"),
        ({"candidate": {**PERSON, "location": {"country": "de"}}}, "candidate.location.country"),
        ({"attachments": [{"kind": "resume", "name": "cv.pdf", "data": PDF}]}, "attachments.0.kind"),
        ({"consent": {"given": True, "expires_at": "2027-01-01T00:00:00"}}, "consent.expires_at"),
        ({"provider_fields": {"kombo": {"remote_fields": {"greenhouse": {"x": "a\x00b"}}}}},
         "provider_fields.kombo.remote_fields"),
    ],
)  # fmt: skip
def test_what_a_provider_cannot_carry_is_refused_by_name(overrides: dict[str, Any], field: str) -> None:
    assert f"{field}:" in problems(**overrides)


@pytest.mark.parametrize("provider", list(Provider))
def test_files_beyond_the_providers_size_limit_are_refused_at_submission(provider: Provider) -> None:
    limit = MAX_ATTACHMENT_BYTES[provider]
    cv = {"name": "cv.txt", "content_type": "text/plain", "data": blob(limit + 1)}
    overrides = {"provider": provider.value, "candidate": {**PERSON, "cv": cv}}
    if provider is Provider.CELPER:
        overrides["integration_id"] = None

    assert f"takes {limit:,} at most" in problems(**overrides) or "at most 100 KB" in problems(**overrides)


def test_kombo_counts_the_files_together_and_points_at_urls() -> None:
    half = {"kind": "other", "name": "a.pdf", "data": blob(MAX_ATTACHMENT_BYTES[Provider.KOMBO] // 2 + 3)}
    text = problems(attachments=[half, {**half, "name": "b.pdf"}])
    assert text.startswith("attachments: the files add up to") and "'url'" in text


def test_a_stored_payload_is_delivered_even_if_a_limit_came_later() -> None:
    too_big = submission_dict(candidate={**PERSON, "cv": {"name": "cv.pdf", "data": blob(10_000_001)}})
    with pytest.raises(ValueError, match="add up to"):
        SubmissionIn.model_validate(too_big)
    assert SubmissionIn.from_stored(too_big).candidate.cv is not None


def test_decoded_size_counts_padding() -> None:
    for size in range(7):
        assert decoded_size(base64.b64encode(b"x" * size).decode()) == size


def test_set_takes_a_whole_answer_list_as_json_and_validates_it() -> None:
    payload = SubmissionIn.model_validate(submission_dict()).payload()
    edit = parse_edit('screening_answers=[{"question_id": "q1", "answer": "Yes"}, {"question_id": "q2", "answer": 3}]')

    item, changed = apply_edits(payload, [edit])

    assert [a.answer for a in item.screening_answers] == ["Yes", 3]
    assert changed == ["screening_answers"]
    with pytest.raises(InvalidSubmission, match=r"screening_answers\.0\.question_id"):
        apply_edits(payload, [parse_edit('screening_answers=[{"answer": "Yes"}]')])


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("consent.given=true", ("consent", "given"), True),
        ("consent.expires_at=2027-01-01T00:00:00Z", ("consent", "expires_at"), "2027-01-01T00:00:00Z"),
        ("provider_fields.celper.skipAnalysis=true", ("provider_fields", "celper", "skipAnalysis"), True),
        ("provider_fields.kombo.stage_id=42", ("provider_fields", "kombo", "stage_id"), "42"),
        ('candidate.location={"country": "DE"}', ("candidate", "location"), {"country": "DE"}),
        ("source.name=Example Job Board", ("source", "name"), "Example Job Board"),
        ("metadata.ref=007", ("metadata", "ref"), "007"),
    ],
)
def test_set_reads_json_only_where_the_field_takes_no_text(text: str, path: tuple[str, ...], value: Any) -> None:
    edit = parse_edit(text)
    assert (edit.path, edit.value) == (path, value)


def test_show_elides_every_files_data() -> None:
    payload = submission_dict(
        candidate={**PERSON, "cv": {"name": "cv.pdf", "data": PDF}},
        attachments=[{"kind": "other", "name": "o.pdf", "data": PDF}],
    )

    class Row:  # what show_json reads of a stored submission
        attempts: list[Any] = []

        def __getattr__(self, name: str) -> Any:
            return payload if name == "payload" else None

    shown = show_json(Row(), [])["payload"]  # type: ignore[arg-type]
    assert PDF not in str(shown)
    assert shown["attachments"][0]["data"].endswith("characters of base64>")


def test_a_purge_removes_every_field_of_the_full_application(sessions: sessionmaker[Session]) -> None:
    later = NOW + timedelta(days=100)
    sid = make(
        sessions, "succeeded", code=None, reason="created",
        candidate={**PERSON, "cv": {"name": "cv.pdf", "data": PDF}},
        attachments=[{"kind": "cover_letter", "name": "ada-letter.pdf", "data": PDF}],
        screening_answers=[{"question_id": "q1", "answer": "I love engines"}],
        consent={"given": True},
        provider_fields={"kombo": {"remote_fields": {"greenhouse": {"candidate": {"nickname": "Countess"}}}}},
        source={"name": "Example Job Board"},
    )  # fmt: skip
    with sessions() as session:
        purge(session, older_than(timedelta(days=90), later), actor="dpo", note="retention", now=later)
        [event] = audit_events(session, sid)

    stored = str(row(sessions, sid).payload)
    for personal in ("Lovelace", PDF, "ada-letter", "I love engines", "Countess"):
        assert personal not in stored
    assert "Example Job Board" in stored  # the job board's own name is not the candidate's
    assert event.changes["removed"][:5] == [
        "payload.candidate", "payload.attachments", "payload.screening_answers", "payload.consent",
        "payload.provider_fields",
    ]  # fmt: skip
