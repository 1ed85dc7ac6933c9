"""Purge by email finds an address by its stored key, however it is spelled (SQLite here; PostgreSQL in e2e)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW
from tests.unit.admin.helpers import make, row
from worker.admin.actions import requeue
from worker.admin.edits import parse_edit
from worker.admin.purge import purge_email
from worker.privacy import email_key

LATER = NOW + timedelta(days=1)
ADDRESS = "JÖRG.Ü@Bücher.de"


def candidate(email: str = ADDRESS) -> dict[str, str]:
    return {"first_name": "Jörg", "last_name": "Müller", "email": email}


@pytest.mark.parametrize(
    "spelling", [ADDRESS, "jörg.ü@bücher.de", "jörg.ü@xn--bcher-kva.de", "JÖRG.Ü@XN--BCHER-KVA.DE"]
)
def test_purge_finds_a_non_ascii_address_by_any_casing_or_its_punycode_form(
    sessions: sessionmaker[Session], spelling: str
) -> None:
    submission_id = make(sessions, "succeeded", code=None, candidate=candidate())
    other = make(sessions, "succeeded", code=None, candidate=candidate("jorg.u@bucher.de"))
    with sessions() as session:
        report = purge_email(session, spelling, actor="dpo", now=LATER, dry_run=False)
    assert report.purged == [submission_id]
    assert "jörg.ü@xn--bcher-kva.de" in report.as_json()["scope"]  # what it matched, whatever was typed
    after = row(sessions, submission_id)
    assert (after.payload["candidate"], after.email_key) == (None, None)  # the key is candidate data too
    assert row(sessions, other).payload["candidate"] is not None


def test_the_key_is_stored_at_enqueue_and_follows_an_edit(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions, "parked", candidate=candidate())
    assert row(sessions, submission_id).email_key == email_key(ADDRESS)
    with sessions() as session:
        fix = [parse_edit("candidate.email=Jörg@Bücher.de")]
        requeue(session, [submission_id], actor="alice", now=NOW, note="typo", edits=fix)
    assert row(sessions, submission_id).email_key == "jörg@xn--bcher-kva.de"
    with sessions() as session:
        assert purge_email(session, "JÖRG@xn--bcher-kva.de", actor="dpo", now=LATER, dry_run=True).purged == [
            submission_id
        ]


def test_a_message_quoting_a_non_ascii_address_in_another_casing_is_found(sessions: sessionmaker[Session]) -> None:
    quoted = make(sessions, "parked", candidate=candidate("someone@example.com"), message=f'"{ADDRESS}" is invalid')
    with sessions() as session:
        report = purge_email(session, "jörg.ü@xn--bcher-kva.de", actor="dpo", now=LATER, dry_run=True)
    assert report.purged == [quoted]
