"""The application form: its fields, and what the candidate reads when applyq refuses what was typed.

The board checks the form with applyq's own model (``SubmissionIn``), so its rules are applyq's, once. The
candidate never sees applyq's validation text: it names fields by their path (``candidate.email: value is
not a valid email address: ...``) and is written for developers. Each refused field gets a sentence of the
board's own instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from worker import SubmissionIn

__all__ = ["FIELDS", "SOMETHING_ELSE", "Field", "Refused", "check", "refused"]

log = logging.getLogger("jobboard")


@dataclass(frozen=True, slots=True)
class Field:
    """One input of the form: its name (also the candidate field in applyq), label, type and what to say."""

    name: str
    label: str
    type: str
    autocomplete: str
    max_length: int
    problem: str


FIELDS = (
    Field("first_name", "First name", "text", "given-name", 100, "Please enter your first name."),
    Field("last_name", "Last name", "text", "family-name", 100, "Please enter your last name."),
    Field("email", "Email", "email", "email", 320, "Please enter a valid email address, such as ada@example.com."),
)
_PROBLEMS = {field.name: field.problem for field in FIELDS}

#: A refusal the form cannot point at (applyq's rules changed, or the job's configuration is wrong).
SOMETHING_ELSE = "We couldn't accept your application just now. Please check your details and try again."


class Refused(Exception):
    """applyq refused the application; ``fields`` are the form's inputs to fix, ``messages`` what to say."""

    def __init__(self, fields: list[str], messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.fields = fields
        self.messages = messages


def check(item: dict[str, Any]) -> SubmissionIn:
    """``item`` validated by applyq's model, or ``Refused`` in the candidate's words (nothing is stored)."""
    try:
        return SubmissionIn.model_validate(item)
    except ValidationError as exc:
        raise refused([tuple(str(part) for part in error["loc"]) for error in exc.errors()]) from None


def refused(paths: list[tuple[str, ...]]) -> Refused:
    """A sentence per refused input, in the form's order; one general sentence for anything else (logged)."""
    named = {_input(path) for path in paths} - {None}
    others = [".".join(path) or "the submission" for path in paths if _input(path) is None]
    if others:  # for the board's developers: the paths only, never what was typed
        log.warning("applyq refused an application for %s", ", ".join(others))
    fields = [field for field in FIELDS if field.name in named]
    return Refused([f.name for f in fields], [f.problem for f in fields] + ([SOMETHING_ELSE] if others else []))


def _input(path: tuple[str, ...]) -> str | None:
    """The form input behind an error's path (``candidate.email`` is ``email``), if the form has one."""
    return path[1] if len(path) >= 2 and path[0] == "candidate" and path[1] in _PROBLEMS else None
