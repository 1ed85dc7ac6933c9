"""One key per mailbox for purge, and provider messages scrubbed before they leave ``applyq show``."""

from __future__ import annotations

import pytest

from worker.privacy import candidate_values, email_key, email_spellings, scrub

ADDRESS = "JÖRG.Ü@Bücher.de"


@pytest.mark.parametrize(
    "spelling",
    [
        ADDRESS,
        "jörg.ü@bücher.de",
        "jörg.ü@BÜCHER.DE",
        "jörg.ü@xn--bcher-kva.de",
        "JÖRG.Ü@XN--BCHER-KVA.DE",
        " Jörg.ü@Bücher.de ",
    ],
)
def test_every_casing_and_the_punycode_domain_have_one_key(spelling: str) -> None:
    assert email_key(spelling) == "jörg.ü@xn--bcher-kva.de"


def test_different_mailboxes_keep_different_keys() -> None:
    assert email_key("a_b@example.com") != email_key("axb@example.com")
    assert email_key("jorg.u@bucher.de") != email_key(ADDRESS)


def test_an_address_email_validator_refuses_still_has_a_key() -> None:
    assert email_key(" Ada@Localhost ") == "ada@localhost"


def test_the_spellings_a_message_may_quote_cover_both_domain_forms_and_json_escapes() -> None:
    forms = email_spellings("jörg.ü@xn--bcher-kva.de")
    assert {"jörg.ü@bücher.de", "jörg.ü@xn--bcher-kva.de", "j\\u00f6rg.\\u00fc@b\\u00fccher.de"} <= forms


@pytest.mark.parametrize(
    ("message", "scrubbed"),
    [
        (
            'field "email" ("JÖRG.Ü@bücher.de") is not a valid email address',
            'field "email" ("[email]") is not a valid email address',
        ),
        ("call +44 20 7946 0000 or (030) 1234567", "call [phone] or [phone]"),
        ("Ada Lovelace applied already (ADA)", "[candidate] [candidate] applied already ([candidate])"),
        ("CV lebenslauf.pdf unreadable", "CV [candidate] unreadable"),
    ],
)
def test_messages_lose_addresses_phones_and_the_candidates_own_values(message: str, scrubbed: str) -> None:
    payload = {"candidate": {"first_name": "Ada", "last_name": "Lovelace", "cv": {"name": "lebenslauf.pdf"}}}
    assert scrub(message, candidate_values(payload)) == scrubbed


@pytest.mark.parametrize(
    "message",
    [
        "rate limited, retry after 2026-11-22T12:00:10Z",
        "see https://logs.example/12345678 (request 3f2a-1234567-abc)",
        "Adapter error: Adalbert is not a candidate value",
    ],
)
def test_what_is_not_candidate_data_stays(message: str) -> None:
    assert scrub(message, ["Ada"]) == message


def test_nothing_to_scrub_is_returned_as_is() -> None:
    assert scrub(None, ["Ada"]) is None
    assert candidate_values({"candidate": None}) == []
