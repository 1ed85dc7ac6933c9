"""Candidate data kept where it belongs: one key per address for purge, and messages scrubbed for display.

* ``email_key``: the one stored form an address is matched on. ``JÖRG.Ü@Bücher.de``, ``jörg.ü@BÜCHER.DE``
  and ``jörg.ü@xn--bcher-kva.de`` are one mailbox to a data-protection request, but neither SQLite's
  ``lower()`` (ASCII only) nor a comparison of the stored text sees that; a key computed here, in Python, the
  same way at enqueue, at an edit, in the migration and at purge, does on every database.
* ``scrub``: a provider message as it may leave ``applyq show``. Providers echo input back (``"x@y.z" is
  not a valid email address``); ``status``, ``list`` and the logs show the code and this scrubbed text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from email_validator import EmailNotValidError, ValidatedEmail, validate_email

__all__ = ["candidate_values", "email_key", "email_spellings", "scrub"]


def email_key(address: str) -> str:
    """The address with its local part case-folded and its domain in IDNA ASCII form, lower-case.

    An address email-validator refuses (stored before a stricter check) is case-folded whole, so every
    stored value still has a key.
    """
    parts = _parts(address)
    if parts is None:
        return unicodedata.normalize("NFC", address.strip()).casefold()
    return f"{parts.local_part.casefold()}@{parts.ascii_domain.lower()}"


def email_spellings(address: str) -> set[str]:
    """Lower-case forms a stored provider message may quote the address in.

    As given, with the domain in Unicode and in IDNA ASCII, and each as JSON escapes it (attempt ``details``
    are stored as JSON text).
    """
    forms = {unicodedata.normalize("NFC", address.strip()).lower()}
    parts = _parts(address)
    if parts is not None:
        forms |= {f"{parts.local_part}@{domain}".lower() for domain in (parts.domain, parts.ascii_domain)}
    return forms | {json.dumps(form)[1:-1] for form in forms}


def _parts(address: str) -> ValidatedEmail | None:
    """The address as email-validator splits and normalises it; None if it is not an address.

    The library pydantic's ``EmailStr`` checked it with at intake: IDNA 2008 with UTS #46 mapping.
    """
    try:
        text = unicodedata.normalize("NFC", address.strip())
        return validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return None


def candidate_values(payload: Mapping[str, Any] | None) -> list[str]:
    """The candidate's own strings (names, email, phone, CV file name) that a message must not repeat."""
    candidate = (payload or {}).get("candidate")
    if not isinstance(candidate, Mapping):
        return []
    cv = candidate.get("cv")
    found = [v for k, v in candidate.items() if k != "cv" and isinstance(v, str)]
    if isinstance(cv, Mapping) and isinstance(cv.get("name"), str):
        found.append(cv["name"])
    return found


#: An address as messages quote it (Unicode letters included: ``jörg.ü@bücher.de``).
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
#: Seven or more digits written as phone numbers are (the characters ``Candidate.phone`` allows), not
#: inside a word, an id or a URL, and not an ISO date.
_PHONE = re.compile(r"(?<![\w/:.-])(?!\d{4}-\d\d-\d\d(?!\d))\+?\(?\d(?:[ ()./-]{0,2}\d){6,}\)?(?![\w/:-])")


def scrub(message: str | None, candidate: Iterable[str] = ()) -> str | None:
    """``message`` without the candidate's own values, email addresses or phone numbers.

    The one definition used wherever a provider's message leaves ``applyq show``: ``status``/``list``
    (table and ``--json``) and the worker's log lines.
    """
    if not message:
        return message
    message = _PHONE.sub("[phone]", _EMAIL.sub("[email]", message))
    for value in sorted({v.strip() for v in candidate if len(v.strip()) >= 2}, key=len, reverse=True):
        message = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "[candidate]", message, flags=re.IGNORECASE)
    return message
