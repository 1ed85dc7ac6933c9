"""Provider messages echo candidate data: ``show`` keeps them whole, ``status`` and ``list`` scrub them."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from tests.unit.admin.helpers import make
from worker.admin.views import show_json, submission_json
from worker.db.models import Submission

CANDIDATE = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@invalid.example", "phone": "+44 20 7946 0000"}
MESSAGE = 'Ada Lovelace: field "email" ("ada@invalid.example") is not a valid email address; phone +44 20 7946 0000'


def load(sessions: sessionmaker[Session], submission_id: str) -> Submission:
    with sessions() as session:
        query = sa.select(Submission).where(Submission.id == submission_id).options(selectinload(Submission.attempts))
        return session.scalars(query).one()


def test_status_and_list_show_the_code_and_a_scrubbed_message(sessions: sessionmaker[Session]) -> None:
    stored = load(sessions, make(sessions, candidate=CANDIDATE, message=MESSAGE))

    status, listed = submission_json(stored, attempts=True), submission_json(stored)

    scrubbed = '[candidate] [candidate]: field "email" ("[email]") is not a valid email address; phone [phone]'
    assert (status["outcome_code"], status["outcome_message"]) == ("REMOTE.INPUT_INVALID", scrubbed)
    assert status["attempts"][0]["error_message"] == scrubbed
    for personal in ("Ada", "Lovelace", "ada@invalid.example", "7946"):
        assert personal not in json.dumps([status, listed])


def test_show_keeps_the_providers_own_words(sessions: sessionmaker[Session]) -> None:
    stored = load(sessions, make(sessions, candidate=CANDIDATE, message=MESSAGE))

    shown = show_json(stored, [])

    assert shown["outcome_message"] == MESSAGE
    assert shown["attempts"][0]["error_message"] == MESSAGE
